"""The Open Inference Protocol v2 gRPC tensor codec: ``ModelInferRequest`` messages to the
REST codec's ``InferRequest``, and a model's outputs to raw tensors. Pure functions; the
messages are read by attribute, so this layer imports no protobuf.

An input carries its values either in ``raw_input_contents`` (one bytes entry per input,
in order, laid out as the REST binary extension's tensors: what tritonclient sends) or
in its typed ``contents`` list (``fp64_contents`` for ``FP64``, ``int_contents`` for
``INT8``/``INT16``/``INT32``...), never both. The checks on names, datatypes, shapes,
counts and ranges are the REST codec's (``_oip``), so both protocols refuse the same
input with the same message. Outputs are answered as raw tensors
(``raw_output_contents``), as Triton does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopstack.errors import Invalid, excerpt
from loopstack.serving._oip import (
    InferRequest,
    InputTensor,
    bytes_elements,
    check_datatype,
    check_shape,
    check_unique,
    datatype_of,
    decode_raw,
    decode_values,
    encode_raw,
    selected_outputs,
)

__all__ = [
    "CONTENTS_FIELDS",
    "RawTensor",
    "encode_outputs",
    "parameter_value",
    "parse_infer_message",
]

#: OIP datatype -> the ``InferTensorContents`` field holding its values (FP16: raw only)
CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(dict.fromkeys(CONTENTS_FIELDS.values()))
# Each typed list's own element type: numpy need not guess (it reads [0, 2**64 - 1] as
# floats), and the REST codec's range checks then narrow int32 to INT8, say.
_LIST_DTYPES = {
    "bool_contents": np.dtype(bool),
    "int_contents": np.dtype("<i4"),
    "int64_contents": np.dtype("<i8"),
    "uint_contents": np.dtype("<u4"),
    "uint64_contents": np.dtype("<u8"),
    "fp32_contents": np.dtype("<f4"),
    "fp64_contents": np.dtype("<f8"),
}
#: tensor parameters that ask for what this server does not do
_UNSUPPORTED = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


@dataclass(frozen=True)
class RawTensor:
    """One output as the response carries it: name, OIP datatype, shape and raw bytes."""

    name: str
    datatype: str
    shape: list[int]
    data: bytes


def parameter_value(parameter: Any) -> bool | int | str | None:
    """The value of an ``InferParameter`` (whichever of bool, int64, string is set), or
    None when none of those is (a kind this copy of the protocol does not know)."""
    kind = parameter.WhichOneof("parameter_choice")
    return None if kind is None else getattr(parameter, kind)  # type: ignore[no-any-return]


def _refuse_unsupported(parameters: Any, what: str) -> None:
    asked = [p for p in _UNSUPPORTED if p in parameters]
    if asked:
        raise Invalid(
            f"{what} asks for shared memory ({', '.join(asked)}); this server takes tensors "
            "only in the request (raw_input_contents or contents)",
            field="parameters",
        )


def _filled_fields(contents: Any) -> list[str]:
    return [f for f in _ALL_FIELDS if len(getattr(contents, f))]


def _from_contents(
    tensor: Any, name: str, datatype: str, shape: tuple[int, ...], has_contents: bool
) -> np.ndarray:
    wanted = CONTENTS_FIELDS.get(datatype)
    filled = _filled_fields(tensor.contents) if has_contents else []
    if wanted is None:  # FP16 has no typed list
        raise Invalid(
            f"input {name!r} is {datatype}, which travels only in raw_input_contents",
            field=f"inputs.{name}.contents",
        )
    if any(f != wanted for f in filled):
        raise Invalid(
            f"input {name!r} is declared {datatype}, so its values go in contents.{wanted}; "
            f"got {', '.join(f'contents.{f}' for f in filled)}",
            field=f"inputs.{name}.contents",
        )
    values = getattr(tensor.contents, wanted)
    if datatype == "BYTES":
        count = math.prod(shape)
        if len(values) != count:
            raise Invalid(
                f"input {name!r} has shape {list(shape)}, so {count} values; got {len(values)}",
                field=f"inputs.{name}.contents",
            )
        return bytes_elements(list(values), shape)
    return decode_values(np.asarray(values, dtype=_LIST_DTYPES[wanted]), name, datatype, shape)


def parse_infer_message(message: Any) -> InferRequest:
    """Decode a ``ModelInferRequest`` (raw or typed contents) into an ``InferRequest``;
    every flaw is an ``Invalid`` naming the tensor."""
    if not len(message.inputs):
        raise Invalid("an inference request needs at least one input; got none", field="inputs")
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise Invalid(
            f"raw_input_contents has {len(raw)} entries; the request has "
            f"{len(message.inputs)} inputs, and each needs one, in order",
            field="raw_input_contents",
        )
    inputs: list[InputTensor] = []
    for position, tensor in enumerate(message.inputs):
        name = check_unique(tensor.name, position, inputs)
        _refuse_unsupported(tensor.parameters, f"input {name!r}")
        datatype = check_datatype(tensor.datatype, name)
        shape = check_shape(list(tensor.shape), name)
        has_contents = tensor.HasField("contents")
        if raw:
            if has_contents and _filled_fields(tensor.contents):
                raise Invalid(
                    f"input {name!r} has both contents and raw_input_contents; give one",
                    field=f"inputs.{name}.contents",
                )
            array = decode_raw(raw[position], name, datatype, shape)
        else:
            array = _from_contents(tensor, name, datatype, shape, has_contents)
        inputs.append(InputTensor(name, datatype, array))
    outputs: dict[str, bool] = {}
    for wanted in message.outputs:
        if not wanted.name:
            raise Invalid(f"each requested output needs a name; got {excerpt(wanted.name)}")
        _refuse_unsupported(wanted.parameters, f"output {wanted.name!r}")
        outputs[wanted.name] = True
    return InferRequest(message.id or None, inputs, outputs, binary_output=True)


def encode_outputs(request: InferRequest, outputs: dict[str, np.ndarray]) -> list[RawTensor]:
    """The outputs the request asks for (every one if it names none) as raw tensors;
    ``Invalid`` for an output the model does not answer."""
    encoded: list[RawTensor] = []
    for name in selected_outputs(request, outputs):
        array = np.asarray(outputs[name])
        datatype = datatype_of(array.dtype)
        encoded.append(RawTensor(name, datatype, list(array.shape), encode_raw(array, datatype)))
    return encoded
