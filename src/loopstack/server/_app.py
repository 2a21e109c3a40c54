"""The server's app factory: native REST, MLflow-compatible REST, health, metrics and the
web UI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from loopstack import __version__
from loopstack.config import Settings, settings
from loopstack.errors import Invalid, excerpt
from loopstack.server._boundary import BadStringGuard
from loopstack.server._http_errors import (
    MLFLOW_PREFIXES,
    error_response,
    install_error_handlers,
)
from loopstack.server._metrics import MetricsMiddleware, ServerMetrics
from loopstack.server._openapi import documented_openapi
from loopstack.server._request_gate import RequestGate
from loopstack.store import open_stores

__all__ = ["MLFLOW_PREFIXES", "create_app", "error_response"]

log = logging.getLogger("loopstack.server")
_WAITING_WRITERS = 16

_STATIC = Path(__file__).parent / "static"
_DOCS_ASSETS = "/docs/assets"
_DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_MAX_ERRORS_LISTED = 10  # a body with 100,000 bad items gets a message of 10


def create_app(config: Settings | None = None) -> FastAPI:
    """Build the ASGI app over the stores named by ``config`` (default: the environment)."""
    config = config or settings()
    # The spec and the docs page are served below, behind the same auth as every route.
    # No redirect of a trailing slash: a 307 is no answer in the API's shape (MLflow's
    # server answers 404 for such a path), and a client re-sending a body is no help.
    app = FastAPI(
        title="loopstack",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.openapi = lambda: documented_openapi(app, MLFLOW_PREFIXES)  # type: ignore[method-assign]
    app.state.config = config
    app.state.stores = open_stores(config)
    # A write waits for the store's write lock at most write_wait_s, then answers 503
    # with Retry-After; at most _WAITING_WRITERS wait at once, so of the 40 threads
    # FastAPI runs sync routes in, the rest stay free for reads.
    app.state.stores.db.bound_writers(wait_s=config.write_wait_s, max_waiting=_WAITING_WRITERS)
    metrics = ServerMetrics()
    app.state.metrics = metrics
    app.state.feature_stores = {}  # project id -> FeatureStore (routes/features.py)

    install_error_handlers(app, log)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            if err.get("type") == "json_invalid":
                reason = (err.get("ctx") or {}).get("error", "invalid JSON")
                at = f" at position {loc[0]}" if loc else ""
                parts.append(f"the request body is not valid JSON ({reason}{at})")
                continue
            where = ".".join(loc)
            # an excerpt of what came: a 50 MB body missing one field is not echoed whole
            got = excerpt(err.get("input"))
            parts.append(f"{where or 'request'}: {err.get('msg')} (got {got})")
            if len(parts) == _MAX_ERRORS_LISTED and len(exc.errors()) > len(parts):
                parts.append(f"and {len(exc.errors()) - len(parts)} more errors")
                break
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        if first.get("type") == "json_invalid":
            field = "body"
        return error_response(request, Invalid("invalid request: " + "; ".join(parts), field=field))

    from loopstack.server._security import authorize
    from loopstack.server.routes import _mlflow_registry as mlflow_registry
    from loopstack.server.routes import (
        admin,
        data,
        deployments,
        features,
        gates,
        loop,
        mlflow_compat,
        monitoring,
        native,
        pipelines,
        registry,
        rollouts,
        ui,
    )

    app.include_router(native.router)
    app.include_router(registry.router)
    app.include_router(gates.router)
    app.include_router(admin.router)
    app.include_router(data.router)
    app.include_router(features.router)
    app.include_router(deployments.router)
    app.include_router(monitoring.router)
    app.include_router(rollouts.router)
    app.include_router(pipelines.router)
    app.include_router(loop.router)
    app.include_router(mlflow_compat.router)
    app.include_router(mlflow_compat.artifacts_router)
    app.include_router(mlflow_compat.logged_models_router)
    app.include_router(mlflow_registry.router)
    app.include_router(ui.router)
    app.state.routers = [
        native.router,
        registry.router,
        gates.router,
        admin.router,
        data.router,
        features.router,
        deployments.router,
        monitoring.router,
        rollouts.router,
        pipelines.router,
        loop.router,
        mlflow_compat.router,
        mlflow_compat.artifacts_router,
        mlflow_compat.logged_models_router,
        mlflow_registry.router,
        ui.router,
    ]

    from fastapi import Depends

    # Public, and answered on the event loop: no database, no worker thread, so they
    # answer while writers queue for the store's write lock and fill the threadpool.
    @app.get("/health", name="health", tags=["ops"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/v2/health/live", name="health_live", tags=["ops"])
    async def health_live() -> dict[str, bool]:
        """Open Inference Protocol v2 liveness: 200 while the server can answer."""
        return {"live": True}

    @app.get(
        "/metrics",
        name="metrics",
        tags=["ops"],
        dependencies=[Depends(authorize)],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def prometheus_metrics(request: Request) -> Response:
        """Requests, errors and latency per route, and the monitor gauges (each alert
        rule's latest value and whether it fires) of the caller's project."""
        from loopstack.monitoring import monitor_metrics

        project_id = getattr(request.state, "project_id", 0)
        body = metrics.render() + monitor_metrics(app.state.stores, project_id=project_id)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get(
        "/openapi.json", name="openapi", include_in_schema=False, dependencies=[Depends(authorize)]
    )
    def openapi_spec() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", name="docs", include_in_schema=False, dependencies=[Depends(authorize)])
    def docs() -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        # The page's scripts are vendored (server/static/swagger): /docs works offline.
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="loopstack API",
            swagger_js_url=f"{_DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.get(f"{_DOCS_ASSETS}/{{name}}", name="docs_assets", include_in_schema=False)
    def docs_assets(name: str) -> Response:
        from loopstack.errors import NotFound

        if name not in _DOCS_FILES:
            raise NotFound(f"no docs asset {name[:80]!r}; the docs page uses {sorted(_DOCS_FILES)}")
        path = _STATIC / "swagger" / name
        return Response(
            path.read_bytes(),
            media_type=_DOCS_FILES[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    from loopstack.server._route_roles import check_every_route_is_declared

    check_every_route_is_declared(_route_names(app))
    app.add_middleware(BadStringGuard)  # NUL, lone surrogates, non-UTF-8: 4xx, not 500
    app.add_middleware(RequestGate)  # the token and the body's size, before the body is read
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _route_names(app: FastAPI) -> list[str]:
    """Every route's name, from the app's OpenAPI operations and its own routes."""
    from fastapi.routing import APIRoute

    names = [r.name for r in app.routes if isinstance(r, APIRoute)]
    for router in getattr(app.state, "routers", []):
        names += [r.name for r in router.routes if isinstance(r, APIRoute)]
    return names
