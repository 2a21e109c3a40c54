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

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from loopstack.server._http_errors import api_routes
from loopstack.server._request_gate import STREAMED_UPLOADS
from loopstack.server._route_roles import minimum_role

__all__ = ["documented_openapi", "serving_openapi"]

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


def _routes(app: FastAPI) -> dict[tuple[str, str], Any]:
    """Each documented operation's route, by (path as in the spec, method)."""
    found: dict[tuple[str, str], Any] = {
        (route.path_format, method.lower()): route
        for route in api_routes(app)
        if route.include_in_schema
        for method in route.methods or ()
    }
    for route in _plain_routes(app):
        for method in route.methods or ():
            found[(route.path_format, method.lower())] = route
    return found


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


# -- the serving app's spec -----------------------------------------------------------
_OIP_ERROR = {
    "title": "OipError",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_REQUEST = {
    "title": "InferenceRequest",
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            },
        },
    },
}
_PREDICT_REQUEST = {
    "title": "PredictRequest",
    "description": "exactly one of records, columns or instances",
    "type": "object",
    "properties": {
        "records": {"type": "array", "items": {"type": "object"}},
        "columns": {"type": "object", "additionalProperties": {"type": "array"}},
        "instances": {"type": "array"},
        "routing_key": {"type": "string"},
    },
}
_SERVING_STATUSES = {
    "400": "input the model or the protocol refuses (under /v2)",
    "401": "no token, or an unknown or revoked one (with --auth)",
    "403": "the token's user cannot read the served project (with --auth)",
    "404": "no such endpoint or version",
    "422": "input the predict route refuses",
    "429": "over the caller's rate limit (with --rate-limit); retry after Retry-After",
    "503": "the model is still loading (or failed to load); retry later",
}
_SERVING_BODIES = {
    "serving_predict": _PREDICT_REQUEST,
    "oip_infer": _INFER_REQUEST,
    "oip_version_infer": _INFER_REQUEST,
}


def _plain_routes(app: FastAPI) -> list[Route]:
    """The routes mounted as plain Starlette ones (the hot predict and infer routes skip
    FastAPI's parameter solving, so FastAPI does not document them)."""
    routers = [app.router, *getattr(app.state, "routers", [])]
    return [
        r
        for router in routers
        for r in router.routes
        if isinstance(r, Route) and not isinstance(r, APIRoute) and r.name in _SERVING_BODIES
    ]


def _add_plain_routes(app: FastAPI, spec: dict[str, Any]) -> None:
    """Document each plain route as FastAPI would: its path parameters (strings), a 200
    answering JSON; the body and the error answers follow as for every route."""
    paths = spec.setdefault("paths", {})
    for route in _plain_routes(app):
        for method in sorted(m.lower() for m in route.methods or () if m != "HEAD"):
            paths.setdefault(route.path_format, {})[method] = {
                "tags": ["serving"],
                "summary": route.name.replace("_", " ").capitalize(),
                "description": inspect.getdoc(route.endpoint) or "",
                "operationId": route.name,
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in route.param_convertors
                ],
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    }
                },
            }


def serving_openapi(app: FastAPI) -> dict[str, Any]:
    """The serving app's OpenAPI document: the JSON bodies its predict and infer routes
    read by hand, the bearer token (with auth on), and every error answer with its shape
    (``{"error"}`` under ``/v2``, loopstack's ``{"error", "message"}`` elsewhere)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = FastAPI.openapi(app)
    _add_plain_routes(app, spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(LoopstackError=_NATIVE_ERROR, OipError=_OIP_ERROR)
    auth = bool(getattr(app.state.config, "auth", False))
    if auth:
        spec["components"]["securitySchemes"] = {"bearer": _BEARER}
        spec["security"] = [{"bearer": []}]
    routes = _routes(app)
    for path, operations in spec.get("paths", {}).items():
        name = "OipError" if path == "/v2" or path.startswith("/v2/") else "LoopstackError"
        body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for method, operation in operations.items():
            route = routes.get((path, method))
            public = route is not None and minimum_role(route.name) is None
            if auth and public:
                operation["security"] = []
            request = _SERVING_BODIES.get(route.name if route is not None else "")
            if request is not None:
                operation["requestBody"] = {
                    "content": {"application/json": {"schema": request}},
                    "required": True,
                }
            responses = operation.setdefault("responses", {})
            for status, description in _SERVING_STATUSES.items():
                if status in ("401", "403", "429") and public:
                    continue
                responses[status] = {"description": description, "content": body}
            if request is not None:
                responses["413"] = {"description": _TOO_LARGE, "content": body}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = spec
    return spec
