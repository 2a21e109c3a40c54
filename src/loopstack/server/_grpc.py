"""The Open Inference Protocol v2 over gRPC: KServe's ``inference.GRPCInferenceService``.

ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer, with
the REST routes' meaning (``routes/oip_v2.py``): each served endpoint is a model of the
same name, its version the registry's version number; a classifier answers ``predict``
(labels) and ``predict_proba`` (probabilities); a stored deployment's request is routed
by its policy, sticky per the ``x-routing-key`` metadata or the request's
``routing_key`` parameter, and the response's ``arm`` parameter names the arm that
answered. Tensors are decoded and encoded by ``serving._oip_grpc``.

A grpc.aio server runs in each serving worker's event loop, beside HTTP, started and
stopped by the serving app's lifespan (``create_serving_app(grpc_address=...)``); on
Linux every worker binds the same port (``SO_REUSEPORT``) and the kernel spreads the
connections. Messages over ``LOOPSTACK_MAX_BODY_MB`` are refused (``RESOURCE_EXHAUSTED``).
loopstack's errors become status codes in one place, ``status_code``: bad input is
``INVALID_ARGUMENT``, an unknown model or version ``NOT_FOUND``, a model still loading or
an overloaded server ``UNAVAILABLE``; never ``UNKNOWN``.

This module imports ``grpc`` (the ``loopstack[grpc]`` extra): import it only when gRPC
serving is asked for; ``_serving_app.grpc_missing()`` says whether it can be.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread
import grpc

from loopstack import __version__
from loopstack.errors import (
    AlreadyExists,
    ArtifactCorrupted,
    Conflict,
    Forbidden,
    Invalid,
    LoopstackError,
    NotFound,
    NotReady,
    Overloaded,
    StoreUnavailable,
    TooLarge,
    Unauthenticated,
)
from loopstack.server._http_errors import bounded_message
from loopstack.server._proto import grpc_predict_v2_pb2 as pb
from loopstack.server._proto import grpc_predict_v2_pb2_grpc as pb_grpc
from loopstack.server.routes.oip_v2 import served_model
from loopstack.serving import Answerer
from loopstack.serving._oip import model_metadata
from loopstack.serving._oip_grpc import encode_outputs, parameter_value, parse_infer_message

__all__ = [
    "ROUTING_KEY_METADATA",
    "SHUTDOWN_GRACE_S",
    "InferenceService",
    "start_grpc_server",
    "status_code",
]

log = logging.getLogger("loopstack.serving")

#: the metadata key (gRPC's form of a header) of the routing key
ROUTING_KEY_METADATA = "x-routing-key"
#: seconds in-flight calls get to finish when the server stops
SHUTDOWN_GRACE_S = 5.0
_MAX_KEY = 256
# Most specific class first: TooLarge is an Invalid, AlreadyExists a Conflict...
_STATUS: tuple[tuple[type[LoopstackError], grpc.StatusCode], ...] = (
    (TooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ArtifactCorrupted, grpc.StatusCode.DATA_LOSS),
    (Invalid, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (Overloaded, grpc.StatusCode.UNAVAILABLE),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
)

_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


def status_code(exc: LoopstackError) -> grpc.StatusCode:
    """The gRPC status of a loopstack error (``INTERNAL`` for one that is the server's
    fault, such as a model that broke its contract).

    >>> status_code(Invalid("no")).name
    'INVALID_ARGUMENT'
    """
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _answers(method: _Method) -> _Method:
    """Turn a loopstack error raised by an RPC into its status and message, and anything
    else into ``INTERNAL`` (logged with its traceback), never gRPC's ``UNKNOWN``."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except LoopstackError as exc:
            code, message = status_code(exc), exc.message
            if code is grpc.StatusCode.INTERNAL:
                log.error("gRPC %s failed: %s", method.__name__, message)
        except Exception as exc:  # noqa: BLE001 - a bug: say so, log the traceback
            log.exception("gRPC %s failed", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"
        await context.abort(code, bounded_message(message))

    return wrapper  # type: ignore[return-value]


def _routing_key(request: Any, context: grpc.aio.ServicerContext) -> str | None:
    """The ``x-routing-key`` metadata, else the request's ``routing_key`` parameter."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == ROUTING_KEY_METADATA:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return str(text)[:_MAX_KEY]
    if "routing_key" not in request.parameters:
        return None
    given = parameter_value(request.parameters["routing_key"])
    if not isinstance(given, (str, int)) or isinstance(given, bool):
        raise Invalid(
            f"the 'routing_key' parameter must be a string or an integer; got {given!r}",
            field="parameters.routing_key",
        )
    return str(given)[:_MAX_KEY]


def _tensor_metadata(doc: dict[str, Any]) -> Any:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=doc["name"], datatype=doc["datatype"], shape=doc["shape"]
    )


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The ``GRPCInferenceService`` over one serving process's ``ServingRuntime``."""

    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self.runtime = answerer.runtime

    @_answers
    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Live while the process answers."""
        return pb.ServerLiveResponse(live=True)

    @_answers
    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Ready once every endpoint's model is loaded and warm."""
        return pb.ServerReadyResponse(ready=self.runtime.ready)

    @_answers
    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Whether the model (and the version, if given) is loaded and warm;
        ``NOT_FOUND`` for an unknown model, or a version other than the one served."""
        endpoint = self.runtime.get(request.name)
        if request.version and endpoint.ready:
            served_model(self.runtime, request.name, request.version)
        return pb.ModelReadyResponse(ready=endpoint.ready)

    @_answers
    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """The server's name and version (no protocol extensions over gRPC)."""
        return pb.ServerMetadataResponse(name="loopstack", version=__version__, extensions=[])

    @_answers
    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """The model's versions, flavor and tensors, as ``GET /v2/models/{name}`` says."""
        _, served = served_model(self.runtime, request.name, request.version or None)
        doc = model_metadata(
            request.name,
            served.version_label,
            served.model.flavor,
            served.signature,
            served.output_names,
        )
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[_tensor_metadata(t) for t in doc["inputs"]],
            outputs=[_tensor_metadata(t) for t in doc["outputs"]],
        )

    @_answers
    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Run the model on the request's tensors; the outputs come back raw."""
        name, version = request.model_name, request.model_version or None
        if version is not None or name not in self.runtime.deployments:
            served_model(self.runtime, name, version)  # NOT_FOUND / UNAVAILABLE first
        key = _routing_key(request, context)
        parsed = await anyio.to_thread.run_sync(parse_infer_message, request)
        answer = await self.answerer.predict(
            name,
            parsed.inputs,
            routing_key=key,
            request_id=request.id[:128] or uuid.uuid4().hex,
            version=version,
        )
        response = pb.ModelInferResponse(
            model_name=name, model_version=answer.model_version or "", id=request.id
        )
        for tensor in encode_outputs(parsed, answer.outputs):
            response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            response.raw_output_contents.append(tensor.data)
        if answer.arm is not None:
            response.parameters["arm"].string_param = answer.arm
        return response


async def start_grpc_server(
    answerer: Answerer, address: str, max_message_bytes: int
) -> tuple[grpc.aio.Server, int]:
    """Start answering through ``answerer`` (batching, the prediction log, metrics: as
    every protocol does) over gRPC on ``address`` (``host:port``; ``[::1]:port``
    for IPv6) in the running event loop: the server and the port it bound. Messages over
    ``max_message_bytes`` are refused; the port is shared with other processes that bind
    it the same way (``SO_REUSEPORT``), as the serving workers do."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(answerer), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc >= 1.60 raises where older ones returned 0
        raise Invalid(f"cannot listen for gRPC on {address} ({exc})", field="grpc_port") from None
    if port == 0:
        raise Invalid(f"cannot listen for gRPC on {address}", field="grpc_port")
    await server.start()
    return server, port
