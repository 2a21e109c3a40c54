"""The serving app factory: Open Inference Protocol v2 and the JSON predict route.

Separate from the tracking server's ``create_app``: a serving replica mounts no
tracking, registry or MLflow route, only ``routes/oip_v2.py`` and ``routes/serving.py``.
It shares the tracking server's edge: the error shapes (``{"error": "..."}`` under
``/v2``), the bad-string guard, the body's size limit (``LOOPSTACK_MAX_BODY_MB``) and
the Prometheus ``/metrics`` per route.

The endpoint list comes as ``EndpointSpec``s (or a ready ``ServingRuntime``); the
models load in a background thread, so ``/v2/health/ready`` answers false until every
one is loaded and warm. Each worker process has its own runtime, so readiness is that
worker's: a worker restarted by uvicorn's supervisor answers false until its own models
are warm. With ``refresh_s`` the runtime re-resolves aliases that often and swaps in a
version an alias moved to, once it is warm. With ``grpc_address`` the app's lifespan
also runs the Open Inference Protocol over gRPC (``_grpc.py``) in the same event loop,
over the same runtime.

The edge, outermost first: metrics, the request gate (with auth on, the token and its
read access to the served project, checked before the body is read: 401, 403), the rate
limit (429 with ``Retry-After``), the bad-string guard. At shutdown (SIGTERM: uvicorn
stops accepting, lets the requests in flight finish, then runs the lifespan's end) the
refresh loop stops, gRPC stops (its calls in flight given a grace period) and every hook
given to ``add_shutdown_hook`` runs: the place to flush what a worker still holds (the
prediction log).

Every protocol answers through one ``serving.Answerer`` held in ``app.state.answerer``:
per-model adaptive batching (``BatchSettings``), the prediction log (one writer per
worker process, flushed at shutdown; a crash loses at most the last flush interval) and
the serving metrics on ``/metrics`` beside the per-route ones.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio.to_thread
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

if TYPE_CHECKING:
    from loopstack.auth import ProjectAccess
    from loopstack.serving.jobs import JobQueue

__all__ = [
    "DEPLOYMENTS_ENV",
    "GRACEFUL_TIMEOUT_S",
    "GRPC_ENV",
    "GRPC_MISSING",
    "JOBS_ENV",
    "PREDICTION_LOG_ENV",
    "REFRESH_ENV",
    "WARM_WAIT_ENV",
    "access_from_settings",
    "add_shutdown_hook",
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
#: the async job queue and workers of each worker process: JSON {"queue", "workers"}
JOBS_ENV = "LOOPSTACK_SERVING_JOBS"
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


#: seconds a stopping worker waits for the requests in flight before closing them
GRACEFUL_TIMEOUT_S = 30
#: seconds a worker started beside others waits for its models before it accepts (0: none)
WARM_WAIT_ENV = "LOOPSTACK_SERVING_WARM_WAIT_S"
#: what ``serve_endpoints`` sets it to with several workers
WARM_WAIT_S = 300.0


def access_from_settings(config: Settings) -> ProjectAccess:
    """Who may call a serving replica of ``config``: readers of the project it serves
    (``config.project``, else ``default``), checked against the metadata database.

    ``Invalid`` when the configuration reaches the metadata through a tracking server
    (tokens are checked against the database itself), or names no such project.
    """
    from loopstack.auth import ProjectAccess, resolve_project
    from loopstack.store import open_stores
    from loopstack.store.remote import server_url

    if server_url(config) is not None:
        raise Invalid(
            "serving with auth checks tokens against the metadata database: set "
            "LOOPSTACK_DB_URL (the tracking server's database) instead of "
            f"LOOPSTACK_TRACKING_URI={config.tracking_uri!r}",
            field="auth",
        )
    db = open_stores(config).db
    project_id = resolve_project(db, config.project)
    return ProjectAccess(db, project_id, project_name=config.project or "default")


def add_shutdown_hook(app: FastAPI, hook: Callable[[], None]) -> None:
    """Run ``hook`` (in a worker thread: it may block) when the serving app shuts down,
    after the requests in flight have been answered; hooks run in the order added, and
    one that fails is logged, not stopping the others.

    >>> add_shutdown_hook(app, prediction_log.flush)   # doctest: +SKIP
    """
    app.state.shutdown_hooks.append(hook)


#: "0" turns the prediction log off in the workers (``loopstack serve --no-prediction-log``)
PREDICTION_LOG_ENV = "LOOPSTACK_SERVING_PREDICTION_LOG"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    wait_s = app.state.warm_before_serving_s
    if wait_s > 0:
        # uvicorn accepts connections only after this: a worker that starts beside others
        # (one restarted after a crash) takes no request its siblings could answer before
        # its models are warm. A model that fails to load does not stop the worker.
        await anyio.to_thread.run_sync(app.state.runtime.wait_ready, wait_s)
    grpc_server = None
    address = app.state.grpc_address
    if address is not None:
        from loopstack.server._grpc import start_grpc_server

        grpc_server, app.state.grpc_port = await start_grpc_server(
            app.state.answerer, address, app.state.config.max_body_bytes
        )
    workers = app.state.job_workers
    if workers is not None:
        workers.start()
    try:
        yield
    finally:
        app.state.stop_refresh.set()
        if workers is not None:
            await workers.stop()  # the jobs being scored finish first
        if grpc_server is not None:
            from loopstack.server._grpc import SHUTDOWN_GRACE_S

            await grpc_server.stop(SHUTDOWN_GRACE_S)
        await app.state.answerer.aclose()  # what waits is answered; the log is flushed
        await _run_shutdown_hooks(app)


async def _run_shutdown_hooks(app: FastAPI) -> None:
    for hook in list(app.state.shutdown_hooks):
        try:
            await anyio.to_thread.run_sync(hook)
        except Exception:  # noqa: BLE001 - one failing hook must not skip the others
            log.exception("a shutdown hook of the serving app failed")


def create_serving_app(
    endpoints: Iterable[EndpointSpec] | ServingRuntime,
    config: Settings | None = None,
    *,
    start: bool = True,
    refresh_s: float = 0.0,
    deployments: DeploymentSource | None = None,
    grpc_address: str | None = None,
    access: ProjectAccess | None = None,
    rate_limit: float | None = None,
    rate_burst: float | None = None,
    warm_before_serving_s: float = 0.0,
    batching: BatchSettings | None = None,
    prediction_log: bool | PredictionLog = True,
    settle_heap: bool = False,
    job_queue: JobQueue | str | None = None,
    async_workers: int = 0,
    job_lease_s: float = 30.0,
) -> FastAPI:
    """The serving ASGI app for ``endpoints``; ``start`` begins loading them at once.

    With ``deployments`` it also serves those stored deployments (each request routed by
    the deployment's policy); the refresh loop (every ``refresh_s``, 1 s if not given)
    polls their revisions and swaps in a changed one once its arms are warm. With
    ``grpc_address`` (``host:port``) the app's lifespan serves gRPC there too, from
    startup to shutdown (``app.state.grpc_port`` is the port bound).

    With ``access`` (or ``config.serving_auth``: readers of ``config``'s project) every
    route but health, readiness and metrics needs a bearer token of a user with at least
    the viewer role in the served project: 401 without a valid one, 403 for a token of
    another project. With ``rate_limit`` (or ``config.serving_rate_limit``) each caller
    gets that many requests per second (bursts of ``rate_burst``), then 429. With
    ``warm_before_serving_s`` the lifespan's startup waits (that long at most) for every
    model to be warm, so the server accepts no connection before (what ``loopstack serve``
    does with several workers).
    ``batching`` are the endpoints' batch settings (a deployment's options override
    them); ``prediction_log`` True writes every prediction to the configured stores'
    event log, False writes none, or give the ``PredictionLog`` to write to. With
    ``settle_heap`` (a serving worker's own process: ``loopstack serve``) the loaded
    models are frozen out of the garbage collector's walks (``serving.settle_heap``).
    With ``job_queue`` (a ``JobQueue``, ``"sql"`` for the configured metadata database,
    or a ``redis://`` URL) it takes async jobs (``routes/jobs.py``), and its lifespan runs
    ``async_workers`` workers that score them (each job leased ``job_lease_s``).

    >>> app = create_serving_app([EndpointSpec("churn", "models:/churn@champion")])
    """
    from loopstack.server._boundary import BadStringGuard
    from loopstack.server._http_errors import install_error_handlers
    from loopstack.server._metrics import MetricsMiddleware, ServerMetrics
    from loopstack.server._rate_limit import RateLimit
    from loopstack.server._request_gate import RequestGate
    from loopstack.server._route_roles import check_every_route_is_declared
    from loopstack.server.routes import jobs, oip_v2, serving
    from loopstack.serving import ServingMetrics

    config = config or settings()
    if grpc_address is not None and (missing := grpc_missing()):
        raise Invalid(missing, field="grpc_address")
    if access is None and config.serving_auth:
        access = access_from_settings(config)
    rate = config.serving_rate_limit if rate_limit is None else rate_limit
    burst = config.serving_rate_burst if rate_burst is None else rate_burst
    runtime = endpoints if isinstance(endpoints, ServingRuntime) else ServingRuntime(endpoints)
    runtime.settle_heap = runtime.settle_heap or settle_heap
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

    app = FastAPI(
        title="loopstack serving",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=_lifespan,
    )
    # The gate reads config.auth: on, it asks ``access`` (not the tracking server's
    # per-route roles: every serving route needs the same read access).
    app.state.config = replace(config, auth=access is not None)
    from loopstack.server._openapi import serving_openapi

    app.openapi = lambda: serving_openapi(app)  # type: ignore[method-assign]
    app.state.access = access
    app.state.shutdown_hooks = []
    app.state.warm_before_serving_s = warm_before_serving_s
    app.state.runtime = runtime
    app.state.grpc_address = grpc_address
    app.state.grpc_port = None  # the port bound, once the lifespan starts gRPC
    app.state.answerer = answerer
    app.include_router(oip_v2.router)
    app.include_router(serving.router)
    app.include_router(jobs.router)
    app.state.routers = [oip_v2.router, serving.router, jobs.router]
    app.state.job_queue, app.state.job_workers = _job_queue(
        config, job_queue, answerer, async_workers, job_lease_s
    )

    install_error_handlers(app)

    @app.get("/health", name="health", tags=["ops"])
    async def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "ready": runtime.ready}

    @app.get(
        "/metrics",
        name="serving_metrics",
        tags=["ops"],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def prometheus_metrics() -> Response:
        """Requests, errors and latency per route, and the serving metrics per endpoint,
        model version and arm (summed over every worker); feature enrichment's counters
        and breakers (the answering worker's)."""
        from loopstack.serving._enrich_metrics import enrichment_metrics

        body = metrics.render() + enrichment_metrics(runtime).encode()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    from starlette.routing import Route

    # every route, the plain Starlette ones (predict, infer) too, has a declared role
    routes = [r for router in [app.router, *app.state.routers] for r in router.routes]
    check_every_route_is_declared(r.name for r in routes if isinstance(r, Route))
    app.add_middleware(BadStringGuard)
    if rate:
        app.add_middleware(RateLimit, rate=rate, burst=burst or None)
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


def _job_queue(
    config: Settings,
    queue: JobQueue | str | None,
    answerer: Answerer,
    workers: int,
    lease_s: float,
) -> tuple[JobQueue | None, object | None]:
    """The app's job queue (opened from its name) and its workers (None: none)."""
    if queue is None:
        if workers:
            raise Invalid("async workers need a job queue (--queue sql|redis://...)")
        return None, None
    from loopstack.server._job_workers import JobWorkers

    if isinstance(queue, str):
        from loopstack.serving.jobs import open_queue
        from loopstack.store import open_stores

        queue = open_queue(queue, db=open_stores(config).db if queue == "sql" else None)
    return queue, JobWorkers(queue, answerer, workers, lease_s=lease_s) if workers else None


def _open_prediction_log(config: Settings, answerer: Answerer) -> PredictionLog:
    """This process's prediction-log writer over the configured stores' event log, in
    the project served (``config.project``, else ``default``)."""
    from loopstack.auth import resolve_project
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog
    from loopstack.store.remote import server_url

    stores = open_stores(config)
    if server_url(config) is not None:  # the event log has no REST API yet
        log.warning(
            "the prediction log is written to this replica's own store (%s), not through "
            "the tracking server %s",
            config.db_url,
            config.tracking_uri,
        )
        project_id = 0
    else:
        project_id = resolve_project(stores.db, config.project)
    return PredictionLog(EventLog(stores, project_id=project_id), on_flush=answerer.on_flush)


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
    raw = os.environ.get(WARM_WAIT_ENV, "0")
    try:
        warm_s = float(raw)
    except ValueError:
        raise Invalid(f"{WARM_WAIT_ENV} must be a number of seconds; got {raw!r}") from None
    return create_serving_app(
        specs,
        refresh_s=refresh_s,
        deployments=source,
        grpc_address=os.environ.get(GRPC_ENV) or None,
        warm_before_serving_s=warm_s,
        batching=BatchSettings.from_env(),
        prediction_log=os.environ.get(PREDICTION_LOG_ENV, "1") != "0",
        settle_heap=True,
        **_jobs_from_env(),
    )


def _jobs_from_env() -> dict[str, Any]:
    raw = os.environ.get(JOBS_ENV)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
        return {"job_queue": str(doc["queue"]), "async_workers": int(doc["workers"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid(
            f"{JOBS_ENV} is JSON {{'queue', 'workers'}}; got {raw[:80]!r}", field=JOBS_ENV
        ) from exc


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
    *,
    grpc_port: int | None = None,
    auth: bool | None = None,
    rate_limit: float | None = None,
    rate_burst: float | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    graceful_timeout_s: int = GRACEFUL_TIMEOUT_S,
    batching: BatchSettings | None = None,
    prediction_log: bool = True,
    job_queue: str | None = None,
    async_workers: int = 0,
) -> None:
    """Serve ``specs`` with uvicorn (blocking): ``workers`` processes, each loading every
    model once with one BLAS/OpenMP thread.

    ``deployments`` is ``(project, names or None for all, prefer_onnx)``: the stored
    deployments each worker serves beside ``specs``. With ``grpc_port`` each worker also
    serves the Open Inference Protocol over gRPC on ``host:grpc_port``, every worker
    binding the same port (``SO_REUSEPORT``; Linux spreads the connections). ``auth``,
    ``rate_limit`` and ``rate_burst`` (None: the settings') are handed to the workers as
    their settings; with ``ssl_certfile`` and ``ssl_keyfile`` it answers HTTPS only. On
    SIGTERM each worker stops accepting and lets the requests in flight finish, for at
    most ``graceful_timeout_s``. ``batching`` and
    ``prediction_log`` as ``create_serving_app`` takes them; with ``job_queue`` (``sql``
    or a ``redis://`` URL) each worker process takes async jobs and runs
    ``async_workers`` job workers.

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
    if grpc_port is not None:
        os.environ[GRPC_ENV] = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
    else:
        os.environ.pop(GRPC_ENV, None)
    # One worker answers readiness false while it loads (a load balancer waits); beside
    # others, a worker accepts nothing until warm: they share one socket, no balancer
    # chooses between them.
    os.environ[WARM_WAIT_ENV] = str(WARM_WAIT_S if workers > 1 else 0.0)
    config = settings()
    if config.project:  # a project chosen by ls.set_project (--project) is not inherited
        os.environ["LOOPSTACK_PROJECT"] = config.project
    for name, value in (
        ("SERVING_AUTH", None if auth is None else ("on" if auth else "off")),
        ("SERVING_RATE_LIMIT", None if rate_limit is None else repr(float(rate_limit))),
        ("SERVING_RATE_BURST", None if rate_burst is None else repr(float(rate_burst))),
    ):
        if value is not None:
            os.environ[f"LOOPSTACK_{name}"] = value
    os.environ[BATCHING_ENV] = (batching or BatchSettings()).to_env()
    os.environ[PREDICTION_LOG_ENV] = "1" if prediction_log else "0"
    if job_queue is not None:
        os.environ[JOBS_ENV] = json.dumps({"queue": job_queue, "workers": async_workers})
    else:
        os.environ.pop(JOBS_ENV, None)
    from loopstack.server import _log_config

    uvicorn.run(
        "loopstack.server._serving_app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_config=_log_config(access_log),
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        timeout_graceful_shutdown=graceful_timeout_s,
    )
