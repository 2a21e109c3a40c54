"""The plain JSON serving routes: list endpoints, and predict on records or columns.

``POST /endpoints/{name}/predict`` takes ``{"records": [{"col": value, ...}, ...]}``
or ``{"columns": {"col": [values...], ...}}`` (for an array model, ``{"instances":
[[...], ...]}``); it answers ``{"request_id", "endpoint", "model_uri",
"model_version", "arm", "predictions", "probabilities"?, "enrichment"?}``. The request
id is the caller's ``X-Request-ID`` when given, else a fresh one; it is echoed in the same header.

On a stored deployment the routing policy picks the arm per request (``arm`` names it;
null on a plain endpoint); the routing key that keeps a caller on one canary arm is the
``X-Routing-Key`` header or the body's ``routing_key``. Shadow arms get a copy after
the answer, off the request's path. Every protocol answers through one
``serving.Answerer`` (batching, the prediction log, metrics); this module only parses
and renders.

``POST /endpoints/{name}/feedback`` takes ``{"request_id", "label"?, "reward"?,
"arm"?}`` or a list of them, recorded in the prediction log; a reward on a bandit
deployment also goes to the bandit's stored state for the arm that answered.

An endpoint configured to enrich (``serving._enrich``) takes rows carrying entity keys;
its answer's ``enrichment`` says ``status`` (ok | degraded), which features were
``defaulted``, ``stale`` or ``missing``, and the ``breaker`` state; failing closed is a
503 whose body's ``enrichment`` has status ``fail_closed``.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopstack.errors import Invalid, excerpt
from loopstack.serving import Answer, Answerer, Endpoint, Feedback
from loopstack.serving._oip import json_object

__all__ = [
    "REQUEST_ID_HEADER",
    "ROLES",
    "RouteLabel",
    "ROUTING_KEY_HEADER",
    "answer_document",
    "json_any",
    "model_input",
    "request_id_of",
    "router",
    "routing_key",
]

router = APIRouter(tags=["serving"])
ROLES: dict[str, str | None] = {
    "serving_endpoints": "viewer",
    "serving_endpoint": "viewer",
    "serving_predict": "viewer",
    "serving_feedback": "viewer",
}
REQUEST_ID_HEADER = "X-Request-ID"
ROUTING_KEY_HEADER = "X-Routing-Key"
_FORMS = ("records", "columns", "instances")


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _answerer(request: Request) -> Answerer:
    answerer: Answerer = request.app.state.answerer
    return answerer


def json_any(raw: bytes, what: str) -> Any:
    """The JSON value of a body; ``Invalid`` saying ``what`` was expected otherwise."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"{what}; the body is not JSON ({exc})", field="body") from None


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
        "enrichment": None if served is None or not served.enricher else served.enricher.describe(),
    }


def _describe_any(answerer: Answerer, endpoint: Endpoint) -> dict[str, Any]:
    """A plain endpoint as ``_describe`` says; a deployment's (the default arm's) with its
    policy, revision and every arm's role, weight, state and version, and each shadow
    arm's comparison with the primary (agreement, score difference) in this process."""
    runtime = answerer.runtime
    doc = _describe(endpoint)
    deployment = runtime.deployments.get(endpoint.name)
    if deployment is None:
        return doc
    loaded = runtime.arm_endpoints(endpoint.name)
    doc["policy"], doc["revision"] = deployment.policy, deployment.revision
    doc["arms"] = [
        {
            "name": a.name,
            "model": a.model_ref,
            "role": a.role,
            "weight": a.weight,
            **{k: v for k, v in _describe(loaded[a.name]).items() if k != "name"},
        }
        for a in deployment.arms
        if a.name in loaded
    ]
    for arm in doc["arms"]:
        if arm["role"] == "shadow":
            arm["shadow"] = answerer.shadow_report(endpoint.name, arm["name"])
    return doc


@router.get("/endpoints", name="serving_endpoints")
async def endpoints(request: Request) -> dict[str, Any]:
    """Every endpoint this server serves, with its state and the version answering."""
    answerer = _answerer(request)
    return {"endpoints": [_describe_any(answerer, e) for e in answerer.runtime.endpoints]}


@router.get("/endpoints/{name}", name="serving_endpoint")
async def endpoint(request: Request, name: str) -> dict[str, Any]:
    """One endpoint's state and the version answering (a deployment's: every arm's)."""
    answerer = _answerer(request)
    return _describe_any(answerer, answerer.runtime.get(name))


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is short printable text, else a fresh id."""
    given = request.headers.get(REQUEST_ID_HEADER, "").strip()
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


def routing_key(request: Request, given: Any = None) -> str | None:
    """The request's routing key: the ``X-Routing-Key`` header, else ``given`` (a body's
    ``routing_key``), else None; ``Invalid`` for a key that is not text."""
    header = request.headers.get(ROUTING_KEY_HEADER)
    if header is not None:
        return header[:256]
    if given is None:
        return None
    if not isinstance(given, (str, int)) or isinstance(given, bool):
        raise Invalid(f"'routing_key' must be text; got {excerpt(given)}", field="routing_key")
    return str(given)[:256]


def model_input(doc: dict[str, Any]) -> Any:
    """What the model takes from a predict body (records, columns or instances);
    ``Invalid`` naming what is wrong with it."""
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


class RouteLabel:
    """What a plain Starlette route leaves in ``scope["route"]`` (FastAPI's routes leave
    themselves) so the metrics middleware labels its requests by path template."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


_PREDICT_ROUTE = RouteLabel("/endpoints/{name}/predict")
#: bodies up to this size are parsed on the event loop; larger ones in a worker thread
_INLINE_BODY = 64 * 1024


async def predict(request: Request) -> Response:
    """Predictions (and, for a classifier, probabilities) for records or columns.

    A plain Starlette route (no FastAPI parameter solving): it is the hot path.
    """
    request.scope["route"] = _PREDICT_ROUTE
    name: str = request.path_params["name"]
    request_id = request_id_of(request)
    answerer = _answerer(request)
    answerer.runtime.get(name)  # an unknown endpoint is 404 before the body is read
    body = await request.body()
    what = f"a predict request is a JSON object with one of {list(_FORMS)}"
    if len(body) <= _INLINE_BODY:
        doc = json_object(body, what)
        inputs = model_input(doc)
    else:
        doc, inputs = await anyio.to_thread.run_sync(_parsed, body, what)
    answer = await answerer.predict(
        name,
        inputs,
        routing_key=routing_key(request, doc.get("routing_key")),
        request_id=request_id,
    )
    return Response(
        _ENCODE(answer_document(answer)).encode("utf-8"),
        media_type="application/json",
        headers={REQUEST_ID_HEADER: request_id},
    )


router.add_route("/endpoints/{name}/predict", predict, methods=["POST"], name="serving_predict")


def answer_document(answer: Answer) -> dict[str, Any]:
    """The predict route's JSON answer for ``answer`` (an async job's result too)."""
    served, outputs = answer.served, answer.outputs
    doc: dict[str, Any] = {
        "request_id": answer.request_id,
        "endpoint": answer.endpoint,
        "model_uri": served.version.uri if served.version else served.model_uri,
        "model_version": served.version_label,
        "arm": answer.arm,
        "predictions": _plain(outputs["predict"]),
    }
    if "predict_proba" in outputs:
        doc["probabilities"] = _plain(outputs["predict_proba"])
    if answer.enrichment is not None:
        doc["enrichment"] = answer.enrichment.to_dict()
    return doc


def _parsed(body: bytes, what: str) -> tuple[dict[str, Any], Any]:
    doc = json_object(body, what)
    return doc, model_input(doc)


@router.post("/endpoints/{name}/feedback", name="serving_feedback")
async def feedback(request: Request, name: str) -> dict[str, Any]:
    """Labels and/or rewards for earlier predictions: ``{"request_id", "label"?,
    "reward"?, "arm"?}`` or a list of them. Each is recorded in the prediction log; a
    reward on a bandit deployment also updates the bandit's stored state for the arm
    that answered (``arm`` if given, else the one this server remembers or logged)."""
    answerer = _answerer(request)
    answerer.runtime.get(name)
    body = await request.body()
    items = Feedback.parse(json_any(body, "feedback is a JSON object or a list of them"))
    results = await anyio.to_thread.run_sync(answerer.feedback, name, items)
    return {"endpoint": name, "accepted": len(results), "results": results}
