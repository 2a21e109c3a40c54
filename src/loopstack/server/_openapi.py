"""The OpenAPI spec the server serves, with the error answers every operation can give.

FastAPI documents a 200 and its own 422 body (``HTTPValidationError``); loopstack answers
errors with its own JSON instead, and every route can be refused by auth (401, 403), by
an unknown project (404) or by a busy store (503). The spec says so, so that a client
generated from it, or a fuzzer checking answers against it, sees the truth: loopstack's
``{"error", "message", "field"}`` under ``/api/v1`` and elsewhere, MLflow's
``{"error_code", "message"}`` under the MLflow prefixes (with MLflow's statuses).

It also declares what FastAPI cannot see: the bearer token every route but the public
ones needs (with auth on), the 413 of every operation that takes a body, and the JSON
bodies of the MLflow DELETE routes, which read them by hand (``body_model``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from loopstack.server._http_errors import api_routes
from loopstack.server._request_gate import STREAMED_UPLOADS
from loopstack.server._route_roles import minimum_role

__all__ = ["documented_openapi"]

_NATIVE_ERROR = {
    "title": "LoopstackError",
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "the LoopstackError subclass"},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "the input at fault"},
    },
}
_MLFLOW_ERROR = {
    "title": "MlflowError",
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
_NATIVE_STATUSES = {
    "401": "no token, or an unknown or revoked one",
    "403": "the caller's role is not enough",
    "404": "no such object (or project)",
    "409": "the object's state forbids the change, or the name is taken",
    "422": "input that breaks a rule; nothing was written",
    "503": "the store is busy or unreachable; retry after Retry-After seconds",
}
_MLFLOW_STATUSES = {
    "400": "INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS or INVALID_STATE",
    "401": "UNAUTHENTICATED",
    "403": "PERMISSION_DENIED",
    "404": "RESOURCE_DOES_NOT_EXIST",
    "503": "TEMPORARILY_UNAVAILABLE; retry after Retry-After seconds",
}


_TOO_LARGE = (
    "the body is over the server's limit (LOOPSTACK_MAX_BODY_MB, or for uploads "
    "LOOPSTACK_MAX_UPLOAD_MB)"
)
_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "a loopstack token (`loopstack token create`); MLflow clients send it "
    "from MLFLOW_TRACKING_TOKEN",
}


def _routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    """Each documented operation's route, by (path as in the spec, method)."""
    return {
        (route.path_format, method.lower()): route
        for route in api_routes(app)
        if route.include_in_schema
        for method in route.methods or ()
    }


def _hand_read_body(route: APIRoute, schemas: dict[str, Any]) -> dict[str, Any] | None:
    """The request body a route reads by hand through a dependency with a ``body_model``
    (FastAPI documents no body for it), as a spec ``requestBody``."""
    for dependency in route.dependant.dependencies:
        model = getattr(dependency.call, "body_model", None)
        if model is None:
            continue
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        return {"content": {"application/json": {"schema": schema}}, "required": True}
    return None


def documented_openapi(app: FastAPI, mlflow_prefixes: tuple[str, ...]) -> dict[str, Any]:
    """``app``'s OpenAPI document with its error responses declared (built once, cached)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = FastAPI.openapi(app)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(LoopstackError=_NATIVE_ERROR, MlflowError=_MLFLOW_ERROR)
    auth = bool(getattr(app.state.config, "auth", False))
    if auth:
        components["securitySchemes"] = {"bearer": _BEARER}
        spec["security"] = [{"bearer": []}]
    routes = _routes(app)
    for path, operations in spec.get("paths", {}).items():
        mlflow = path.startswith(mlflow_prefixes)
        statuses, name = (
            (_MLFLOW_STATUSES, "MlflowError") if mlflow else (_NATIVE_STATUSES, "LoopstackError")
        )
        body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for method, operation in operations.items():
            route = routes.get((path, method))
            if route is not None and "requestBody" not in operation:
                hand_read = _hand_read_body(route, schemas)
                if hand_read is not None:
                    operation["requestBody"] = hand_read
            public = route is not None and minimum_role(route.name) is None
            if auth and public:
                operation["security"] = []  # no token needed
            responses = operation.setdefault("responses", {})
            if mlflow:
                responses.pop("422", None)  # MLflow answers invalid input with a 400
            for status, description in statuses.items():
                if status == "401" and public:
                    continue
                responses[status] = {"description": description, "content": body}
            upload = route is not None and route.name.removesuffix("_ajax") in STREAMED_UPLOADS
            if "requestBody" in operation or upload:
                responses["413"] = {"description": _TOO_LARGE, "content": body}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = spec
    return spec
