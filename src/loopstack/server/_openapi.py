"""The OpenAPI spec the server serves, with the error answers every operation can give.

FastAPI documents a 200 and its own 422 body (``HTTPValidationError``); loopstack answers
errors with its own JSON instead, and every route can be refused by auth (401, 403), by
an unknown project (404) or by a busy store (503). The spec says so, so that a client
generated from it, or a fuzzer checking answers against it, sees the truth: loopstack's
``{"error", "message", "field"}`` under ``/api/v1`` and elsewhere, MLflow's
``{"error_code", "message"}`` under the MLflow prefixes (with MLflow's statuses).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

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


def documented_openapi(app: FastAPI, mlflow_prefixes: tuple[str, ...]) -> dict[str, Any]:
    """``app``'s OpenAPI document with its error responses declared (built once, cached)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = FastAPI.openapi(app)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(LoopstackError=_NATIVE_ERROR, MlflowError=_MLFLOW_ERROR)
    for path, operations in spec.get("paths", {}).items():
        mlflow = path.startswith(mlflow_prefixes)
        statuses, name = (
            (_MLFLOW_STATUSES, "MlflowError") if mlflow else (_NATIVE_STATUSES, "LoopstackError")
        )
        body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if mlflow:
                responses.pop("422", None)  # MLflow answers invalid input with a 400
            for status, description in statuses.items():
                responses[status] = {"description": description, "content": body}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = spec
    return spec
