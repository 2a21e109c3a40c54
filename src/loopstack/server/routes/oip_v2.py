"""Open Inference Protocol v2 REST (KServe, Triton): health, model metadata, infer.

Each served endpoint is an OIP model of the same name, its version the registry's
version number. ``POST .../infer`` takes JSON tensors or the binary tensor extension
(``Inference-Header-Content-Length``); a classifier answers ``predict`` (labels) and
``predict_proba`` (class probabilities). Errors are ``{"error": "<message>"}``: 400 for
bad input, 404 for an unknown model or version, 503 while a model loads.

A stored deployment's ``infer`` is routed per request by its policy (sticky per the
``X-Routing-Key`` header); the response's ``model_version`` is the answering arm's
version and ``parameters.arm`` names the arm.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from loopstack import __version__
from loopstack.errors import Invalid, NotFound
from loopstack.server.routes.serving import RouteLabel, request_id_of, routing_key
from loopstack.serving import Answerer, Endpoint, ServedModel, ServingRuntime
from loopstack.serving._oip import encode_response, model_metadata, parse_infer_request

__all__ = ["ROLES", "router", "served_model"]

router = APIRouter(tags=["inference"])
#: route name -> the least role it needs with ``loopstack serve --auth`` (as in _route_roles)
ROLES: dict[str, str | None] = {
    "oip_server_metadata": "viewer",
    "oip_live": None,
    "oip_ready": None,
    "oip_model_metadata": "viewer",
    "oip_model_version_metadata": "viewer",
    "oip_model_ready": "viewer",
    "oip_model_version_ready": "viewer",
    "oip_infer": "viewer",
    "oip_version_infer": "viewer",
}
HEADER_LENGTH = "Inference-Header-Content-Length"


def _runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


def served_model(
    runtime: ServingRuntime, name: str, version: str | None
) -> tuple[Endpoint, ServedModel]:
    """The endpoint ``name`` and the model it serves; ``NotFound`` for an unknown name or
    a ``version`` other than the one served, ``NotReady`` while it loads (REST and gRPC
    alike)."""
    endpoint = runtime.get(name)
    served = endpoint.model()
    if version is not None and version != served.version_label:
        raise NotFound(
            f"model {name!r} serves version {served.version_label or '(none: a run model)'}; "
            f"got version {version[:40]!r}",
            field="version",
        )
    return endpoint, served


def _served(request: Request, name: str, version: str | None) -> tuple[Endpoint, ServedModel]:
    return served_model(_runtime(request), name, version)


@router.get("/v2", name="oip_server_metadata")
async def server_metadata() -> dict[str, Any]:
    """The server's name, version and protocol extensions."""
    return {"name": "loopstack", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/v2/health/live", name="oip_live")
async def live() -> dict[str, bool]:
    """200 while the process answers."""
    return {"live": True}


@router.get("/v2/health/ready", name="oip_ready")
async def ready(request: Request) -> JSONResponse:
    """200 once every endpoint's model is loaded and warm; 400 (the protocol's "false") before."""
    is_ready = _runtime(request).ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 400)


def _metadata(request: Request, name: str, version: str | None) -> dict[str, Any]:
    _, served = _served(request, name, version)
    return model_metadata(
        name, served.version_label, served.model.flavor, served.signature, served.output_names
    )


@router.get("/v2/models/{name}", name="oip_model_metadata")
async def metadata(request: Request, name: str) -> dict[str, Any]:
    """The model's inputs and outputs, from its signature."""
    return _metadata(request, name, None)


@router.get("/v2/models/{name}/versions/{version}", name="oip_model_version_metadata")
async def version_metadata(request: Request, name: str, version: str) -> dict[str, Any]:
    """The metadata of one version (the one served; another is 404)."""
    return _metadata(request, name, version)


def _readiness(request: Request, name: str, version: str | None) -> JSONResponse:
    endpoint = _runtime(request).get(name)
    if version is not None and endpoint.ready:
        _served(request, name, version)
    body: dict[str, Any] = {"name": name, "ready": endpoint.ready}
    if endpoint.error:
        body["error"] = endpoint.error
    return JSONResponse(body, status_code=200 if endpoint.ready else 400)


@router.get("/v2/models/{name}/ready", name="oip_model_ready")
async def model_ready(request: Request, name: str) -> JSONResponse:
    """200 once the model is loaded and warm, 400 before (or after a failed load)."""
    return _readiness(request, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready", name="oip_model_version_ready")
async def model_version_ready(request: Request, name: str, version: str) -> JSONResponse:
    """Readiness of one version."""
    return _readiness(request, name, version)


def _header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise Invalid(
            f"{HEADER_LENGTH} must be a whole number; got {raw[:40]!r}", field=HEADER_LENGTH
        )
    return int(raw)


#: bodies up to this size are decoded on the event loop; larger ones in a worker thread
_INLINE_BODY = 64 * 1024


async def _infer(request: Request, name: str, version: str | None) -> Response:
    runtime = _runtime(request)
    if version is not None or name not in runtime.deployments:
        _served(request, name, version)  # 404 / 503 before the body is read
    header_length = _header_length(request)
    body = await request.body()
    if len(body) <= _INLINE_BODY:
        parsed = parse_infer_request(body, header_length)
    else:
        parsed = await anyio.to_thread.run_sync(parse_infer_request, body, header_length)
    answerer: Answerer = request.app.state.answerer
    answer = await answerer.predict(
        name,
        parsed.inputs,
        routing_key=routing_key(request),
        request_id=parsed.id or request_id_of(request),
        version=version,
    )
    extra = None if answer.arm is None else {"arm": answer.arm}
    content, json_length = encode_response(
        name, answer.model_version, parsed, answer.outputs, parameters=extra
    )
    if json_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(json_length)},
    )


_INFER_ROUTE = RouteLabel("/v2/models/{name}/infer")
_VERSION_INFER_ROUTE = RouteLabel("/v2/models/{name}/versions/{version}/infer")


async def infer(request: Request) -> Response:
    """Run the model on the request's tensors (a plain Starlette route: the hot path)."""
    request.scope["route"] = _INFER_ROUTE
    return await _infer(request, request.path_params["name"], None)


async def version_infer(request: Request) -> Response:
    """Run one version (the one served; another is 404)."""
    request.scope["route"] = _VERSION_INFER_ROUTE
    params = request.path_params
    return await _infer(request, params["name"], params["version"])


router.add_route("/v2/models/{name}/infer", infer, methods=["POST"], name="oip_infer")
router.add_route(
    "/v2/models/{name}/versions/{version}/infer",
    version_infer,
    methods=["POST"],
    name="oip_version_infer",
)
