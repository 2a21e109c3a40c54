"""Errors the web framework raises before a route runs, in the API's own error shape.

No route for a path, a method the path does not take, a body that cannot be read: under
the MLflow prefixes these answer as an MLflow server (``{"error_code", "message"}``,
``ENDPOINT_NOT_FOUND`` with 404, ``INVALID_PARAMETER_VALUE`` with 400), elsewhere as
loopstack's own errors (``{"error", "message"}``), never as FastAPI's ``{"detail"}``.
Under ``/v2/`` (the Open Inference Protocol) an error is ``{"error": "<message>"}``, bad
input answering 400 as the protocol says.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from loopstack.errors import Invalid, LoopstackError, NotFound

__all__ = [
    "bounded_message",
    "install_error_handlers",
    "MLFLOW_PREFIXES",
    "api_routes",
    "error_response",
    "http_error_response",
    "is_mlflow",
    "is_oip",
]

MLFLOW_PREFIXES = (
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/2.0/mlflow-artifacts",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
)
#: the most characters of an error message the server sends
MAX_MESSAGE = 2000
#: seconds a client should wait before retrying a 503 (the store was busy)
RETRY_AFTER_S = "1"
# MLflow answers each error code with this HTTP status.
_MLFLOW_STATUS = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "INVALID_STATE": 400,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "INTERNAL_ERROR": 500,
}


def is_mlflow(request: Request) -> bool:
    """Whether the request is under one of the MLflow-compatible prefixes."""
    path = request.url.path
    return any(path == p or path.startswith(p + "/") for p in MLFLOW_PREFIXES)


def is_oip(request: Request) -> bool:
    """Whether the request is under the Open Inference Protocol's ``/v2`` prefix."""
    path = request.url.path
    return path == "/v2" or path.startswith("/v2/")


def error_response(request: Request, exc: LoopstackError) -> JSONResponse:
    """A loopstack error as the API of the request's path renders errors; a 503 says when
    to retry (the store was busy: clients, HttpClient and mlflow's, back off and retry)."""
    if is_oip(request):
        status = 400 if exc.status_code == 422 else exc.status_code
        response = JSONResponse({"error": bounded_message(exc.message)}, status_code=status)
    elif is_mlflow(request):
        code = exc.mlflow_code
        # a body over the limit is a 413 whatever the API: MLflow has no code of its own
        status = 413 if exc.status_code == 413 else _MLFLOW_STATUS.get(code, 400)
        response = JSONResponse(
            {"error_code": code, "message": bounded_message(exc.message)}, status
        )
    else:
        body = exc.to_dict()
        body["message"] = bounded_message(exc.message)
        response = JSONResponse(body, status_code=exc.status_code)
    if response.status_code == 503:
        response.headers["Retry-After"] = RETRY_AFTER_S
    return response


def bounded_message(message: str) -> str:
    """A message of at most MAX_MESSAGE characters: the last guard against a message
    that quotes a whole input (the places that build messages quote ``excerpt``s)."""
    if len(message) <= MAX_MESSAGE:
        return message
    cut = len(message) - MAX_MESSAGE
    return f"{message[: MAX_MESSAGE // 2]}…({cut} characters cut)…{message[-MAX_MESSAGE // 2 :]}"


def api_routes(app: Any) -> list[Any]:
    """Every ``APIRoute`` of the app, those of its included routers too (FastAPI keeps an
    included router whole, so ``app.routes`` does not list them), with their full paths."""
    from fastapi.routing import APIRoute

    routers = [app.router, *getattr(app.state, "routers", [])]
    return [route for router in routers for route in router.routes if isinstance(route, APIRoute)]


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (one route per method, so look at all)."""
    from starlette.routing import Route

    path, methods = request.url.path, set[str]()
    routers = [request.app.router, *getattr(request.app.state, "routers", [])]
    plain = [r for router in routers for r in router.routes if isinstance(r, Route)]
    for route in plain:  # the API routes and the plain Starlette ones (serving's hot path)
        if route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


def http_error_response(request: Request, exc: HTTPException) -> JSONResponse:
    """A framework error (404 no route, 405 wrong method, 400 unreadable body) in our shape."""
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        if is_mlflow(request):
            return JSONResponse(
                {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no MLflow endpoint {where}"},
                status_code=404,
            )
        return error_response(request, NotFound(f"no endpoint {where}"))
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        message = (
            f"{request.url.path} does not take {request.method}; it takes {', '.join(allowed)}"
        )
        headers = {"Allow": ", ".join(allowed)}
        body: dict[str, Any]
        if is_oip(request):
            body = {"error": message}
        elif is_mlflow(request):
            body = {"error_code": "ENDPOINT_NOT_FOUND", "message": message}
        else:
            body = {"error": "MethodNotAllowed", "message": message}
        return JSONResponse(body, status_code=405, headers=headers)
    if isinstance(exc.__cause__, LoopstackError):  # raised while FastAPI read the body
        return error_response(request, exc.__cause__)  # (the request gate's TooLarge)
    if exc.status_code == 400:  # FastAPI could not read the body (invalid UTF-8, ...)
        return error_response(
            request,
            Invalid(f"the request body could not be read as JSON: {exc.detail}", field="body"),
        )
    if is_mlflow(request):
        return JSONResponse(
            {
                "error_code": "INTERNAL_ERROR" if exc.status_code >= 500 else "BAD_REQUEST",
                "message": str(exc.detail),
            },
            status_code=exc.status_code,
            headers=exc.headers,
        )
    return JSONResponse(
        {"error": "HTTPError", "message": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def install_error_handlers(app: FastAPI, log: logging.Logger | None = None) -> None:
    """Answer a ``LoopstackError``, an HTTP error and any unexpected exception in the
    API's own shape (never Starlette's plain text); with ``log``, a 5xx ``LoopstackError``
    is logged there too. Shared by the tracking server and the serving app."""

    @app.exception_handler(LoopstackError)
    async def _loopstack_error(request: Request, exc: LoopstackError) -> JSONResponse:
        if log is not None and exc.status_code >= 500:
            log.warning(
                "%s %s -> %s: %s", request.method, request.url.path, exc.status_code, exc.message
            )
        return error_response(request, exc)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return http_error_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's outermost handler: a bug answers in the API's shape, not plain text
        # (and is still logged with its traceback, by Starlette, after this answer).
        response = error_response(
            request,
            LoopstackError(
                f"the server failed on {request.method} {request.url.path} "
                f"({type(exc).__name__}); the server's log has the details"
            ),
        )
        response.headers["Connection"] = "close"  # uvicorn closes it after an exception
        return response
