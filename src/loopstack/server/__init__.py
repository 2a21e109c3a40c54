"""The HTTP server: native REST under /api/v1, the MLflow REST API, /health and /metrics."""

from loopstack.server._app import create_app

__all__ = ["create_app", "serve"]


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> None:
    """Run the server with uvicorn (blocking)."""
    import os
    import tempfile

    import uvicorn

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its counters here, so /metrics sums every worker.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loopstack-metrics-")
    uvicorn.run(
        "loopstack.server._app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
