"""The HTTP server: native REST under /api/v1, the MLflow REST API, /health and /metrics."""

from loopstack.server._app import create_app

__all__ = ["create_app", "serve"]


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> None:
    """Run the server with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run("loopstack.server._app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="warning")
