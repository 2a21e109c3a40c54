"""The serving app factory: Open Inference Protocol v2 and the JSON predict route.

Separate from the tracking server's ``create_app``: a serving replica mounts no
tracking, registry or MLflow route, only ``routes/oip_v2.py`` and ``routes/serving.py``.
It shares the tracking server's edge: the error shapes (``{"error": "..."}`` under
``/v2``), the bad-string guard, the body's size limit (``LOOPSTACK_MAX_BODY_MB``) and
the Prometheus ``/metrics`` per route.

The endpoint list comes as ``EndpointSpec``s (or a ready ``ServingRuntime``); the
models load in a background thread, so ``/v2/health/ready`` answers false until every
one is loaded and warm. With ``refresh_s`` the runtime re-resolves aliases that often
and swaps in a version an alias moved to, once it is warm. With ``grpc_address`` the
app's lifespan also runs the Open Inference Protocol over gRPC (``_grpc.py``) in the
same event loop, over the same runtime.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from loopstack import __version__
from loopstack.config import Settings, settings
from loopstack.errors import Invalid
from loopstack.serving import (
    ENDPOINTS_ENV,
    DeploymentSource,
    EndpointSpec,
    ServingRuntime,
    limit_threads,
    specs_from_env,
)

__all__ = [
    "DEPLOYMENTS_ENV",
    "GRPC_ENV",
    "GRPC_MISSING",
    "REFRESH_ENV",
    "app_from_environment",
    "create_serving_app",
    "grpc_missing",
    "serve_endpoints",
]

log = logging.getLogger("loopstack.serving")
#: seconds between alias re-resolutions in a worker started from the environment (0: off)
REFRESH_ENV = "LOOPSTACK_SERVING_REFRESH_S"
#: the stored deployments a worker serves: JSON {"project": ..., "names": [...] or null}
DEPLOYMENTS_ENV = "LOOPSTACK_SERVING_DEPLOYMENTS"
#: where each worker serves gRPC too, ``host:port`` (unset: HTTP only)
GRPC_ENV = "LOOPSTACK_SERVING_GRPC"
GRPC_MISSING = "gRPC serving needs grpcio and protobuf: pip install 'loopstack[grpc]'"
_GRPC_MODULES = ("grpc", "google.protobuf")


def grpc_missing() -> str | None:
    """Why gRPC cannot be served in this environment (``GRPC_MISSING``), or None."""
    try:
        found = all(importlib.util.find_spec(m) is not None for m in _GRPC_MODULES)
    except ModuleNotFoundError:  # ``google`` itself is absent
        found = False
    return None if found else GRPC_MISSING


def create_serving_app(
    endpoints: Iterable[EndpointSpec] | ServingRuntime,
    config: Settings | None = None,
    *,
    start: bool = True,
    refresh_s: float = 0.0,
    deployments: DeploymentSource | None = None,
    grpc_address: str | None = None,
) -> FastAPI:
    """The serving ASGI app for ``endpoints``; ``start`` begins loading them at once.

    With ``deployments`` it also serves those stored deployments (each request routed by
    the deployment's policy); the refresh loop (every ``refresh_s``, 1 s if not given)
    polls their revisions and swaps in a changed one once its arms are warm. With
    ``grpc_address`` (``host:port``) the app's lifespan serves gRPC there too, from
    startup to shutdown (``app.state.grpc_port`` is the port bound).

    >>> app = create_serving_app([EndpointSpec("churn", "models:/churn@champion")])
    """
    from loopstack.server._boundary import BadStringGuard
    from loopstack.server._http_errors import install_error_handlers
    from loopstack.server._metrics import MetricsMiddleware, ServerMetrics
    from loopstack.server._request_gate import RequestGate
    from loopstack.server.routes import oip_v2, serving

    config = config or settings()
    if grpc_address is not None and (missing := grpc_missing()):
        raise Invalid(missing, field="grpc_address")
    runtime = endpoints if isinstance(endpoints, ServingRuntime) else ServingRuntime(endpoints)
    app = FastAPI(
        title="loopstack serving",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=_grpc_lifespan(runtime, grpc_address, config.max_body_bytes),
    )
    # Serving answers without tokens in this release; the gate still bounds every body.
    app.state.config = replace(config, auth=False)
    app.state.runtime = runtime
    app.state.grpc_port = None  # the port bound, once the lifespan starts gRPC
    app.include_router(oip_v2.router)
    app.include_router(serving.router)
    app.state.routers = [oip_v2.router, serving.router]

    install_error_handlers(app)

    metrics = ServerMetrics()

    @app.get("/health", name="health", tags=["ops"])
    async def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "ready": runtime.ready}

    @app.get("/metrics", name="metrics", tags=["ops"])
    def prometheus_metrics() -> Response:
        """Requests, errors and latency per route (summed over every worker); feature
        enrichment's counters and breakers (the answering worker's)."""
        from loopstack.serving._enrich import enrichment_metrics

        body = metrics.render() + enrichment_metrics(runtime).encode()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BadStringGuard)
    app.add_middleware(RequestGate)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if deployments is not None:
        runtime.synced = False
        refresh_s = refresh_s or 1.0
    if start:
        runtime.start()
    if deployments is not None:
        threading.Thread(
            target=_first_pass, args=(runtime, deployments), name="loopstack-deploy", daemon=True
        ).start()
    #: set it to end the refresh loop (a test's teardown, an embedding app's shutdown)
    app.state.stop_refresh = threading.Event()
    if refresh_s > 0:
        _start_refresh(runtime, refresh_s, deployments, app.state.stop_refresh)
    return app


def _grpc_lifespan(runtime: ServingRuntime, address: str | None, max_bytes: int) -> Any:
    """The app's lifespan: nothing without ``address``; else a gRPC server on it in the
    app's event loop, stopped (in-flight calls given a grace period) at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if address is None:
            yield
            return
        from loopstack.server._grpc import SHUTDOWN_GRACE_S, start_grpc_server

        server, app.state.grpc_port = await start_grpc_server(runtime, address, max_bytes)
        try:
            yield
        finally:
            await server.stop(SHUTDOWN_GRACE_S)

    return lifespan


def _first_pass(runtime: ServingRuntime, source: DeploymentSource) -> None:
    try:
        source.poll(runtime)
    except Exception:  # noqa: BLE001 - the refresh loop tries again
        log.exception("loading the deployments failed")
        return
    runtime.synced = True


def _start_refresh(
    runtime: ServingRuntime,
    every_s: float,
    source: DeploymentSource | None,
    stop: threading.Event,
) -> None:

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                changed = runtime.refresh()
                if source is not None:
                    changed += source.poll(runtime)
                    runtime.synced = True
            except Exception:  # noqa: BLE001 - a refresh must never end the loop
                log.exception("refreshing the endpoints failed")
                continue
            if changed:
                log.warning("endpoints now serving a new version: %s", ", ".join(changed))

    threading.Thread(target=loop, name="loopstack-refresh", daemon=True).start()


def app_from_environment() -> FastAPI:
    """uvicorn's factory in each worker process: one BLAS thread, then the endpoints named
    by ``LOOPSTACK_SERVING_ENDPOINTS`` (set by ``loopstack serve``)."""
    limit_threads()
    raw = os.environ.get(REFRESH_ENV, "0")
    try:
        refresh_s = float(raw)
    except ValueError:
        raise Invalid(f"{REFRESH_ENV} must be a number of seconds; got {raw!r}") from None
    source = _source_from_env()
    specs = specs_from_env() if source is None or os.environ.get(ENDPOINTS_ENV) else []
    return create_serving_app(
        specs,
        refresh_s=refresh_s,
        deployments=source,
        grpc_address=os.environ.get(GRPC_ENV) or None,
    )


def _source_from_env() -> DeploymentSource | None:
    raw = os.environ.get(DEPLOYMENTS_ENV)
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        project, names = doc.get("project"), doc.get("names")
    except (ValueError, AttributeError) as exc:
        raise Invalid(
            f"{DEPLOYMENTS_ENV} is JSON {{'project', 'names'}}; got {raw[:80]!r}",
            field=DEPLOYMENTS_ENV,
        ) from exc
    from loopstack.serving import deployments

    return DeploymentSource(
        deployments(project=project), names, prefer_onnx=bool(doc.get("prefer_onnx"))
    )


def serve_endpoints(
    specs: Iterable[EndpointSpec],
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    access_log: bool = True,
    refresh_s: float = 0.0,
    deployments: tuple[str | None, list[str] | None, bool] | None = None,
    grpc_port: int | None = None,
) -> None:
    """Serve ``specs`` with uvicorn (blocking): ``workers`` processes, each loading every
    model once with one BLAS/OpenMP thread.

    ``deployments`` is ``(project, names or None for all, prefer_onnx)``: the stored
    deployments each worker serves beside ``specs``. With ``grpc_port`` each worker also
    serves the Open Inference Protocol over gRPC on ``host:grpc_port``, every worker
    binding the same port (``SO_REUSEPORT``; Linux spreads the connections).

    >>> serve_endpoints([EndpointSpec("churn", "models:/churn@champion")], port=8080)
    """
    import uvicorn

    from loopstack.serving import specs_to_env

    limit_threads()  # before the workers start: the BLAS reads these when it loads
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        # Each worker writes its counters here, so /metrics sums every worker.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loopstack-metrics-")
    specs = list(specs)
    if specs:
        os.environ[ENDPOINTS_ENV] = specs_to_env(specs)
    else:
        os.environ.pop(ENDPOINTS_ENV, None)
    if deployments is not None:
        project, names, onnx = deployments
        os.environ[DEPLOYMENTS_ENV] = json.dumps(
            {"project": project, "names": names, "prefer_onnx": onnx}
        )
    os.environ[REFRESH_ENV] = str(refresh_s)
    if grpc_port is not None:
        os.environ[GRPC_ENV] = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
    else:
        os.environ.pop(GRPC_ENV, None)
    from loopstack.server import _log_config

    uvicorn.run(
        "loopstack.server._serving_app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_config=_log_config(access_log),
    )
