"""The HTTP servers: the tracking server (native REST under /api/v1, the MLflow REST API,
/health, /metrics) and the serving app (Open Inference Protocol v2 over REST and, with
``loopstack[grpc]``, gRPC; JSON predict)."""

from loopstack.server._app import create_app
from loopstack.server._serving_app import (
    access_from_settings,
    add_shutdown_hook,
    create_serving_app,
    grpc_missing,
    serve_endpoints,
)

__all__ = [
    "access_from_settings",
    "add_shutdown_hook",
    "create_app",
    "create_serving_app",
    "grpc_missing",
    "serve",
    "serve_endpoints",
]


def serve(
    host: str = "127.0.0.1", port: int = 5000, workers: int = 1, access_log: bool = True
) -> None:
    """Run the server with uvicorn (blocking), logging one line per request unless
    ``access_log`` is off.

    >>> serve(port=5000, workers=2)
    """
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
        access_log=access_log,
        log_config=_log_config(access_log),
    )


def _log_config(access_log: bool) -> dict[str, object]:
    """uvicorn's logging: its own chatter at warning, the access log (if on) at info."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, object] = {**LOGGING_CONFIG}
    loggers = {name: dict(spec) for name, spec in LOGGING_CONFIG["loggers"].items()}
    loggers["uvicorn"]["level"] = "WARNING"
    loggers["uvicorn.error"]["level"] = "WARNING"
    loggers["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    config["loggers"] = loggers
    return config
