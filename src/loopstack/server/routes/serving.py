"""The plain JSON serving routes: list endpoints, and predict on records or columns.

``POST /endpoints/{name}/predict`` takes ``{"records": [{"col": value, ...}, ...]}``
or ``{"columns": {"col": [values...], ...}}`` (for an array model, ``{"instances":
[[...], ...]}``); it answers ``{"request_id", "endpoint", "model_uri",
"model_version", "predictions", "probabilities"?}``. The request id is the caller's
``X-Request-ID`` when given, else a fresh one; it is echoed in the same header.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loopstack.errors import Invalid, excerpt
from loopstack.serving import Endpoint, ServingRuntime
from loopstack.serving._oip import json_object

__all__ = ["REQUEST_ID_HEADER", "ROLES", "router"]

router = APIRouter(tags=["serving"])
ROLES: dict[str, str | None] = {
    "serving_endpoints": None,
    "serving_endpoint": None,
    "serving_predict": None,
}
REQUEST_ID_HEADER = "X-Request-ID"
_FORMS = ("records", "columns", "instances")


def _runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


def _describe(endpoint: Endpoint) -> dict[str, Any]:
    served = endpoint.served
    return {
        "name": endpoint.name,
        "model_uri": endpoint.spec.model_uri,
        "state": endpoint.state,
        "error": endpoint.error,
        "model_version": None if served is None else served.version_label,
        "flavor": None if served is None else served.model.flavor,
        "outputs": [] if served is None else served.output_names,
    }


@router.get("/endpoints", name="serving_endpoints")
async def endpoints(request: Request) -> dict[str, Any]:
    """Every endpoint this server serves, with its state and the version answering."""
    return {"endpoints": [_describe(e) for e in _runtime(request).endpoints]}


@router.get("/endpoints/{name}", name="serving_endpoint")
async def endpoint(request: Request, name: str) -> dict[str, Any]:
    """One endpoint's state and the version answering."""
    return _describe(_runtime(request).get(name))


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "").strip()
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


def _model_input(body: bytes) -> Any:
    doc = json_object(body, f"a predict request is a JSON object with one of {list(_FORMS)}")
    given = [k for k in _FORMS if k in doc]
    if len(given) != 1:
        raise Invalid(
            f"a predict request has exactly one of {list(_FORMS)}; got keys {excerpt(list(doc))}",
            field="body",
        )
    form = given[0]
    value = doc[form]
    if form == "records":
        if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
            raise Invalid(
                "'records' must be a non-empty list of objects (one per row); "
                f"got {excerpt(value)}",
                field="records",
            )
        return value
    if form == "columns":
        if (
            not isinstance(value, dict)
            or not value
            or not all(isinstance(v, list) for v in value.values())
        ):
            raise Invalid(
                f"'columns' must map each column name to a list of values; got {excerpt(value)}",
                field="columns",
            )
        lengths = {len(v) for v in value.values()}
        if len(lengths) != 1:
            sizes = {k: len(v) for k, v in value.items()}
            raise Invalid(f"every column must have as many values; got {sizes}", field="columns")
        return value
    if not isinstance(value, list) or not value:
        raise Invalid(
            f"'instances' must be a non-empty list; got {excerpt(value)}", field="instances"
        )
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise Invalid(f"'instances' is a ragged list ({exc})", field="instances") from None


def _plain(array: np.ndarray) -> list[Any]:
    """JSON values of ``array``: NaN and infinities (which JSON cannot hold) become null."""
    values = np.asarray(array)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return _nulls(values)
    if values.dtype.kind in "SO":
        return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
    return values.tolist()  # type: ignore[no-any-return]


def _nulls(values: np.ndarray) -> list[Any]:
    if values.ndim > 1:
        return [_nulls(v) for v in values]
    return [None if not math.isfinite(v) else v for v in values.tolist()]


@router.post("/endpoints/{name}/predict", name="serving_predict")
async def predict(request: Request, name: str) -> JSONResponse:
    """Predictions (and, for a classifier, probabilities) for records or columns."""
    request_id = _request_id(request)
    served = _runtime(request).get(name).model()
    body = await request.body()

    def run() -> dict[str, np.ndarray]:
        return served.predict(_model_input(body))

    outputs = await anyio.to_thread.run_sync(run)
    answer: dict[str, Any] = {
        "request_id": request_id,
        "endpoint": name,
        "model_uri": served.version.uri if served.version else served.model_uri,
        "model_version": served.version_label,
        "predictions": _plain(outputs["predict"]),
    }
    if "predict_proba" in outputs:
        answer["probabilities"] = _plain(outputs["predict_proba"])
    return JSONResponse(answer, headers={REQUEST_ID_HEADER: request_id})
