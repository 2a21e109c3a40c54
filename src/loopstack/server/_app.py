"""The server's app factory: native REST, MLflow-compatible REST, health and metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from loopstack import __version__
from loopstack.config import Settings, settings
from loopstack.errors import Invalid, LoopstackError
from loopstack.server._boundary import BadStringGuard
from loopstack.server._metrics import MetricsMiddleware, ServerMetrics
from loopstack.server._openapi import documented_openapi
from loopstack.store import open_stores

__all__ = ["create_app"]

log = logging.getLogger("loopstack.server")
MLFLOW_PREFIXES = (
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/2.0/mlflow-artifacts",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
)
#: seconds a client should wait before retrying a 503 (the store was busy)
RETRY_AFTER_S = "1"
# MLflow answers each error code with this HTTP status.
_MLFLOW_STATUS = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "INVALID_STATE": 400,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "INTERNAL_ERROR": 500,
}


def _is_mlflow(request: Request) -> bool:
    return request.url.path.startswith(MLFLOW_PREFIXES)


def error_response(request: Request, exc: LoopstackError) -> JSONResponse:
    """``exc`` as MLflow's or loopstack's error JSON; a 503 says when to retry."""
    if _is_mlflow(request):
        code = exc.mlflow_code
        response = JSONResponse(
            {"error_code": code, "message": exc.message}, status_code=_MLFLOW_STATUS.get(code, 400)
        )
    else:
        response = JSONResponse(exc.to_dict(), status_code=exc.status_code)
    if response.status_code == 503:  # busy store: clients (HttpClient, mlflow) back off, retry
        response.headers["Retry-After"] = RETRY_AFTER_S
    return response


def create_app(config: Settings | None = None) -> FastAPI:
    """Build the ASGI app over the stores named by ``config`` (default: the environment)."""
    config = config or settings()
    # The spec and the docs page are served below, behind the same auth as every route.
    app = FastAPI(
        title="loopstack", version=__version__, openapi_url=None, docs_url=None, redoc_url=None
    )
    app.openapi = lambda: documented_openapi(app, MLFLOW_PREFIXES)  # type: ignore[method-assign]
    app.state.config = config
    app.state.stores = open_stores(config)
    metrics = ServerMetrics()
    app.state.metrics = metrics

    @app.exception_handler(LoopstackError)
    async def _loopstack_error(request: Request, exc: LoopstackError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning(
                "%s %s -> %s: %s", request.method, request.url.path, exc.status_code, exc.message
            )
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'request'}: {err.get('msg')} (got {err.get('input')!r})")
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        field = ".".join(str(p) for p in first if p != "body") or None
        return error_response(request, Invalid("invalid request: " + "; ".join(parts), field=field))

    from loopstack.server._security import authorize
    from loopstack.server.routes import _mlflow_registry as mlflow_registry
    from loopstack.server.routes import admin, mlflow_compat, native, registry

    app.include_router(native.router)
    app.include_router(registry.router)
    app.include_router(admin.router)
    app.include_router(mlflow_compat.router)
    app.include_router(mlflow_compat.artifacts_router)
    app.include_router(mlflow_registry.router)
    app.state.routers = [
        native.router,
        registry.router,
        admin.router,
        mlflow_compat.router,
        mlflow_compat.artifacts_router,
        mlflow_registry.router,
    ]

    from fastapi import Depends

    @app.get("/health", name="health", tags=["ops"], dependencies=[Depends(authorize)])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get(
        "/metrics",
        name="metrics",
        tags=["ops"],
        dependencies=[Depends(authorize)],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get(
        "/openapi.json", name="openapi", include_in_schema=False, dependencies=[Depends(authorize)]
    )
    def openapi_spec() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", name="docs", include_in_schema=False, dependencies=[Depends(authorize)])
    def docs() -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="loopstack API")

    from loopstack.server._route_roles import check_every_route_is_declared

    check_every_route_is_declared(_route_names(app))
    app.add_middleware(BadStringGuard)  # NUL, lone surrogates, non-UTF-8: 4xx, not 500
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _route_names(app: FastAPI) -> list[str]:
    """Every route's name, from the app's OpenAPI operations and its own routes."""
    from fastapi.routing import APIRoute

    names = [r.name for r in app.routes if isinstance(r, APIRoute)]
    for router in getattr(app.state, "routers", []):
        names += [r.name for r in router.routes if isinstance(r, APIRoute)]
    return names
