"""The serving app factory: Open Inference Protocol v2 and the JSON predict route.

Separate from the tracking server's ``create_app``: a serving replica mounts no
tracking, registry or MLflow route, only ``routes/oip_v2.py`` and ``routes/serving.py``.
It shares the tracking server's edge: the error shapes (``{"error": "..."}`` under
``/v2``), the bad-string guard, the body's size limit (``LOOPSTACK_MAX_BODY_MB``) and
the Prometheus ``/metrics`` per route.

The endpoint list comes as ``EndpointSpec``s (or a ready ``ServingRuntime``); the
models load in a background thread, so ``/v2/health/ready`` answers false until every
one is loaded and warm. With ``refresh_s`` the runtime re-resolves aliases that often
and swaps in a version an alias moved to, once it is warm.

Every protocol answers through one ``serving.Answerer`` held in ``app.state.answerer``:
per-model adaptive batching (``BatchSettings``), the prediction log (one writer per
worker process, flushed at shutdown; a crash loses at most the last flush interval) and
the serving metrics on ``/metrics`` beside the per-route ones.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import FastAPI
from fastapi.responses import Response

from loopstack import __version__
from loopstack.config import Settings, settings
from loopstack.errors import Invalid
from loopstack.serving import (
    ENDPOINTS_ENV,
    Answerer,
    BatchSettings,
    DeploymentSource,
    EndpointSpec,
    PredictionLog,
    ServingRuntime,
    limit_threads,
    specs_from_env,
)

__all__ = [
    "DEPLOYMENTS_ENV",
    "PREDICTION_LOG_ENV",
    "REFRESH_ENV",
    "app_from_environment",
    "create_serving_app",
    "serve_endpoints",
]

log = logging.getLogger("loopstack.serving")
#: seconds between alias re-resolutions in a worker started from the environment (0: off)
REFRESH_ENV = "LOOPSTACK_SERVING_REFRESH_S"
#: the stored deployments a worker serves: JSON {"project": ..., "names": [...] or null}
DEPLOYMENTS_ENV = "LOOPSTACK_SERVING_DEPLOYMENTS"
#: "0" turns the prediction log off in the workers (``loopstack serve --no-prediction-log``)
PREDICTION_LOG_ENV = "LOOPSTACK_SERVING_PREDICTION_LOG"


def create_serving_app(
    endpoints: Iterable[EndpointSpec] | ServingRuntime,
    config: Settings | None = None,
    *,
    start: bool = True,
    refresh_s: float = 0.0,
    deployments: DeploymentSource | None = None,
    batching: BatchSettings | None = None,
    prediction_log: bool | PredictionLog = True,
) -> FastAPI:
    """The serving ASGI app for ``endpoints``; ``start`` begins loading them at once.

    With ``deployments`` it also serves those stored deployments (each request routed by
    the deployment's policy); the refresh loop (every ``refresh_s``, 1 s if not given)
    polls their revisions and swaps in a changed one once its arms are warm.
    ``batching`` are the endpoints' batch settings (a deployment's options override
    them); ``prediction_log`` True writes every prediction to the configured stores'
    event log, False writes none, or give the ``PredictionLog`` to write to.

    >>> app = create_serving_app([EndpointSpec("churn", "models:/churn@champion")])
    """
    from loopstack.server._boundary import BadStringGuard
    from loopstack.server._http_errors import install_error_handlers
    from loopstack.server._metrics import MetricsMiddleware, ServerMetrics
    from loopstack.server._request_gate import RequestGate
    from loopstack.server.routes import oip_v2, serving
    from loopstack.serving import ServingMetrics

    config = config or settings()
    runtime = endpoints if isinstance(endpoints, ServingRuntime) else ServingRuntime(endpoints)
    metrics = ServerMetrics()
    answerer = Answerer(
        runtime,
        settings=batching,
        metrics=ServingMetrics(metrics.registry),
        deployments=deployments,
    )
    if prediction_log is True:
        answerer.prediction_log = _open_prediction_log(config, answerer)
    elif isinstance(prediction_log, PredictionLog):
        answerer.prediction_log = prediction_log

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.stop_refresh.set()
        await answerer.aclose()  # what waits is answered; the log is flushed

    app = FastAPI(
        title="loopstack serving",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    # Serving answers without tokens in this release; the gate still bounds every body.
    app.state.config = replace(config, auth=False)
    app.state.runtime = runtime
    app.state.answerer = answerer
    app.include_router(oip_v2.router)
    app.include_router(serving.router)
    app.state.routers = [oip_v2.router, serving.router]

    install_error_handlers(app)

    @app.get("/health", name="health", tags=["ops"])
    async def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "ready": runtime.ready}

    @app.get("/metrics", name="metrics", tags=["ops"])
    def prometheus_metrics() -> Response:
        """Requests, errors and latency per route, and the serving metrics per endpoint,
        model version and arm (summed over every worker)."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    from starlette.routing import Route

    from loopstack.server._route_roles import SERVING_ROUTE_ROLES, check_every_route_is_declared

    routes = [r for router in [app.router, *app.state.routers] for r in router.routes]
    check_every_route_is_declared(
        [r.name for r in routes if isinstance(r, Route)], SERVING_ROUTE_ROLES
    )
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


def _open_prediction_log(config: Settings, answerer: Answerer) -> PredictionLog:
    """This process's prediction-log writer over the configured stores' event log."""
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog

    return PredictionLog(EventLog(open_stores(config)), on_flush=answerer.on_flush)


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
        batching=BatchSettings.from_env(),
        prediction_log=os.environ.get(PREDICTION_LOG_ENV, "1") != "0",
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
    batching: BatchSettings | None = None,
    prediction_log: bool = True,
) -> None:
    """Serve ``specs`` with uvicorn (blocking): ``workers`` processes, each loading every
    model once with one BLAS/OpenMP thread.

    ``deployments`` is ``(project, names or None for all, prefer_onnx)``: the stored
    deployments each worker serves beside ``specs``; ``batching`` and ``prediction_log``
    as ``create_serving_app`` takes them.

    >>> serve_endpoints([EndpointSpec("churn", "models:/churn@champion")], port=8080)
    """
    import uvicorn

    from loopstack.serving import BATCHING_ENV, specs_to_env

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
    os.environ[BATCHING_ENV] = (batching or BatchSettings()).to_env()
    os.environ[PREDICTION_LOG_ENV] = "1" if prediction_log else "0"
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
