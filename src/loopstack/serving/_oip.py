"""The Open Inference Protocol v2 (KServe, Triton) REST codec: pure functions, no HTTP.

A request is ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype",
"parameters"?, "data"}], "outputs"?: [{"name", "parameters"?}]}``; a response is
``{"model_name", "model_version", "id", "outputs": [{"name", "shape", "datatype",
"data"}]}``. With the binary tensor extension the body is the JSON header
(``Inference-Header-Content-Length`` bytes long) followed by the raw tensors, each
input saying its size in ``parameters.binary_data_size``; an output is answered in
binary when it asks ``parameters.binary_data`` (or the request asks
``parameters.binary_data_output``). Raw tensors are little-endian, row-major; a
``BYTES`` element is a 4-byte little-endian length then its bytes.

Tabular models take either one input tensor per signature column (each of shape
``[N]`` or ``[N, 1]``, named by the column) or one 2-D tensor ``[N, C]`` holding the
columns in signature order. Every flaw is an ``Invalid`` naming the tensor.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopstack.errors import Invalid, excerpt
from loopstack.registry.flavors import Signature, TensorSpec

__all__ = [
    "DATATYPES",
    "InferRequest",
    "InputTensor",
    "bytes_elements",
    "check_datatype",
    "check_shape",
    "check_unique",
    "datatype_of",
    "decode_raw",
    "decode_values",
    "encode_raw",
    "encode_response",
    "json_object",
    "model_input",
    "model_metadata",
    "parse_infer_request",
    "selected_outputs",
]

#: OIP datatype -> numpy dtype (BYTES holds str/bytes objects)
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
# Which kinds of JSON values (as numpy infers them) each datatype family takes.
_JSON_KINDS = {"BOOL": "b", "UINT": "iu", "INT": "iu", "FP": "iuf", "BYTES": "U"}
_MAX_LISTED = 8


@dataclass(frozen=True)
class InputTensor:
    """One decoded input: its name, OIP datatype and the array (already in its shape)."""

    name: str
    datatype: str
    array: np.ndarray


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request."""

    id: str | None
    inputs: list[InputTensor]
    #: requested output name -> answer it in binary; empty: every output
    outputs: dict[str, bool] = field(default_factory=dict)
    binary_output: bool = False


def datatype_of(dtype: Any) -> str:
    """The OIP datatype of a numpy dtype (strings and objects are ``BYTES``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "USO":
        return "BYTES"
    for name, known in DATATYPES.items():
        if name != "BYTES" and known == dtype.newbyteorder("<"):
            return name
    raise Invalid(f"no Open Inference Protocol datatype holds {dtype}", field="datatype")


def _family(datatype: str) -> str:
    return next(f for f in ("UINT", "INT", "FP", "BOOL", "BYTES") if datatype.startswith(f))


def json_object(raw: bytes, what: str = "an inference request is a JSON object") -> dict[str, Any]:
    """``raw`` decoded as a JSON object, or ``Invalid`` saying what ``what`` expects."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"the request body is not valid JSON ({exc})", field="body") from None
    if not isinstance(doc, dict):
        raise Invalid(f"{what}; got {type(doc).__name__}", field="body")
    return doc


def check_shape(shape: Any, name: str) -> tuple[int, ...]:
    """Input ``name``'s shape as a tuple, or ``Invalid`` unless it is a list of whole
    numbers >= 0 (the REST and gRPC codecs share this rule)."""
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise Invalid(
            f"input {name!r}: 'shape' must be a list of whole numbers >= 0; got {excerpt(shape)}",
            field=f"inputs.{name}.shape",
        )
    return tuple(shape)


def _parameters(where: dict[str, Any], what: str) -> dict[str, Any]:
    params = where.get("parameters", {})
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise Invalid(f"{what}: 'parameters' must be an object; got {excerpt(params)}")
    return params


def check_datatype(datatype: Any, name: str) -> str:
    """``datatype`` if it is an OIP datatype, else ``Invalid`` naming the valid ones."""
    if datatype not in DATATYPES:
        raise Invalid(
            f"input {name!r}: 'datatype' must be one of {', '.join(DATATYPES)}; "
            f"got {excerpt(datatype)}",
            field=f"inputs.{name}.datatype",
        )
    return str(datatype)


def check_unique(name: Any, position: int, earlier: list[InputTensor]) -> str:
    """Input ``position``'s name, or ``Invalid`` if it is missing or given twice."""
    if not isinstance(name, str) or not name:
        raise Invalid(f"inputs[{position}] needs a 'name' string; got {excerpt(name)}")
    if any(t.name == name for t in earlier):
        raise Invalid(f"input {name!r} is given twice", field=f"inputs.{name}")
    return name


def decode_values(data: Any, name: str, datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Input ``name``'s values (JSON ``data``, a possibly nested list; or a gRPC typed
    contents list, as an array of its element type) as an array of ``datatype`` in
    ``shape``; ``Invalid`` for a count that does not fill the shape, values of another
    kind or out of the type's range."""
    try:
        values = np.asarray(data)
    except ValueError as exc:
        raise Invalid(
            f"input {name!r}: 'data' must be a (possibly nested) list of {datatype} values; "
            f"got a ragged list ({exc})",
            field=f"inputs.{name}.data",
        ) from None
    count = math.prod(shape)
    if values.size != count:
        raise Invalid(
            f"input {name!r} has shape {list(shape)}, so {count} values; got {values.size}",
            field=f"inputs.{name}.data",
        )
    family = _family(datatype)
    if values.size and values.dtype.kind not in _JSON_KINDS[family]:
        raise Invalid(
            f"input {name!r} is declared {datatype}; its data holds {_json_kind(values)}",
            field=f"inputs.{name}.datatype",
        )
    target = DATATYPES[datatype]
    if family in ("INT", "UINT") and values.size:
        info = np.iinfo(target)
        if values.min() < info.min or values.max() > info.max:
            raise Invalid(
                f"input {name!r}: a value is outside {datatype}'s range {info.min}..{info.max}",
                field=f"inputs.{name}.data",
            )
    if family == "BYTES":
        return values.astype(object).reshape(shape)
    return values.astype(target).reshape(shape)


def _json_kind(values: np.ndarray) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "strings"}.get(
        values.dtype.kind, f"{values.dtype} values"
    )


def decode_raw(raw: bytes, name: str, datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Input ``name``'s raw tensor bytes (little-endian, row-major; a ``BYTES`` element a
    4-byte length then its bytes) as an array in ``shape``, or ``Invalid`` if the bytes
    do not hold exactly that many elements."""
    count = math.prod(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        at = 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise Invalid(f"input {name!r}: a BYTES element is cut short", field=name)
            (size,) = struct.unpack_from("<I", raw, at)
            items.append(raw[at + 4 : at + 4 + size])
            at += 4 + size
        if at != len(raw) or len(items) != count:
            raise Invalid(
                f"input {name!r} has shape {list(shape)}, so {count} BYTES elements; "
                f"its binary data holds {len(items)}",
                field=f"inputs.{name}.data",
            )
        return bytes_elements(items, shape)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise Invalid(
            f"input {name!r} has shape {list(shape)} of {datatype}, so "
            f"{count * dtype.itemsize} bytes; its binary data has {len(raw)}",
            field=f"inputs.{name}.data",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def bytes_elements(items: list[bytes], shape: tuple[int, ...]) -> np.ndarray:
    """``BYTES`` elements as an object array in ``shape``: UTF-8 text decoded to ``str``,
    other bytes kept as they are."""
    array = np.empty(len(items), dtype=object)
    array[:] = [_text(item) for item in items]
    return array.reshape(shape)


def _text(item: bytes) -> str | bytes:
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        return item


def parse_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Decode an inference request (JSON, or the binary extension's header + tensors).

    >>> parse_infer_request(b'{"inputs": [{"name": "x", "shape": [1], '
    ...                     b'"datatype": "FP64", "data": [1.5]}]}').inputs[0].array
    array([1.5])
    """
    if header_length is None:
        header, binary = body, b""
    else:
        if not 0 < header_length <= len(body):
            raise Invalid(
                f"Inference-Header-Content-Length is {header_length}; the body has "
                f"{len(body)} bytes",
                field="Inference-Header-Content-Length",
            )
        header, binary = body[:header_length], body[header_length:]
    doc = json_object(header)
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise Invalid(
            f"an inference request needs 'inputs', a non-empty list; got {excerpt(raw_inputs)}",
            field="inputs",
        )
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise Invalid(f"'id' must be a string; got {excerpt(request_id)}", field="id")
    inputs: list[InputTensor] = []
    offset = 0
    for position, tensor in enumerate(raw_inputs):
        if not isinstance(tensor, dict):
            raise Invalid(f"inputs[{position}] must be an object; got {excerpt(tensor)}")
        name = check_unique(tensor.get("name"), position, inputs)
        datatype = check_datatype(tensor.get("datatype"), name)
        shape = check_shape(tensor.get("shape"), name)
        size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise Invalid(f"input {name!r}: binary_data_size must be a whole number >= 0")
            if offset + size > len(binary):
                raise Invalid(
                    f"input {name!r}: binary_data_size {size} runs past the body's binary "
                    f"part ({len(binary) - offset} bytes left)",
                    field=f"inputs.{name}.parameters",
                )
            array = decode_raw(binary[offset : offset + size], name, datatype, shape)
            offset += size
        elif "data" in tensor:
            array = decode_values(tensor["data"], name, datatype, shape)
        else:
            raise Invalid(
                f"input {name!r} has neither 'data' nor parameters.binary_data_size",
                field=f"inputs.{name}.data",
            )
        inputs.append(InputTensor(name, datatype, array))
    if offset != len(binary):
        raise Invalid(
            f"the body has {len(binary) - offset} binary bytes that no input's "
            "binary_data_size accounts for",
            field="body",
        )
    binary_output = bool(_parameters(doc, "the request").get("binary_data_output", False))
    outputs: dict[str, bool] = {}
    raw_outputs = doc.get("outputs") or []
    if not isinstance(raw_outputs, list):
        raise Invalid(f"'outputs' must be a list; got {excerpt(raw_outputs)}", field="outputs")
    for wanted in raw_outputs:
        if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
            raise Invalid(f"each of 'outputs' needs a 'name'; got {excerpt(wanted)}")
        as_binary = _parameters(wanted, f"output {wanted['name']!r}").get("binary_data")
        outputs[wanted["name"]] = binary_output if as_binary is None else bool(as_binary)
    return InferRequest(request_id, inputs, outputs, binary_output)


def _one_column(tensor: InputTensor) -> np.ndarray:
    array = tensor.array
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    if array.ndim != 1:
        raise Invalid(
            f"input {tensor.name!r} is one column: its shape must be [N] or [N, 1]; "
            f"got {list(array.shape)}",
            field=f"inputs.{tensor.name}.shape",
        )
    return array


def model_input(inputs: list[InputTensor], signature: Signature | None) -> Any:
    """What ``LoadedModel.predict`` takes, from the request's tensors (see the module doc)."""
    names = [t.name for t in inputs]
    if signature is None or isinstance(signature.inputs, TensorSpec):
        if len(inputs) == 1:
            return inputs[0].array
        if signature is not None:
            raise Invalid(f"this model takes one input tensor; got {len(inputs)}: {names}")
        return _columns_frame(inputs)
    columns = [c.name for c in signature.columns]
    by_name = {t.name: t for t in inputs}
    unknown = [n for n in names if n not in columns]
    if len(inputs) == 1 and inputs[0].array.ndim == 2 and inputs[0].name not in columns:
        array = inputs[0].array
        if array.shape[1] != len(columns):
            raise Invalid(
                f"input {inputs[0].name!r} of shape {list(array.shape)} should hold this "
                f"model's {len(columns)} columns ({_listed(columns)}) as [N, {len(columns)}]",
                field=f"inputs.{inputs[0].name}.shape",
            )
        return pd.DataFrame({c: array[:, i] for i, c in enumerate(columns)})
    if unknown:
        raise Invalid(
            f"unknown input(s) {_listed(unknown)}: this model takes one input per column "
            f"({_listed(columns)}) or one [N, {len(columns)}] tensor",
            field="inputs",
        )
    missing = [c for c in columns if c not in by_name]
    if missing:
        raise Invalid(
            f"missing input(s) {_listed(missing)}: this model takes one input per column "
            f"({_listed(columns)})",
            field="inputs",
        )
    return _columns_frame([by_name[c] for c in columns])


def _columns_frame(inputs: list[InputTensor]) -> pd.DataFrame:
    arrays = {t.name: _one_column(t) for t in inputs}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{n}: {len(a)}" for n, a in arrays.items())
        raise Invalid(f"every column input must have as many rows; got {sizes}", field="inputs")
    return pd.DataFrame(arrays)


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def encode_raw(array: np.ndarray, datatype: str) -> bytes:
    """``array`` as raw tensor bytes of ``datatype`` (the layout ``decode_raw`` reads)."""
    if datatype == "BYTES":
        parts = []
        for item in array.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes()


def _json_data(array: np.ndarray, datatype: str) -> list[Any]:
    flat = array.ravel()
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    return flat.tolist()  # type: ignore[no-any-return]


def selected_outputs(request: InferRequest, outputs: dict[str, np.ndarray]) -> list[str]:
    """The names of the outputs to answer: those the request names (``Invalid`` for one
    the model does not answer), else every one."""
    unknown = [n for n in request.outputs if n not in outputs]
    if unknown:
        raise Invalid(
            f"unknown output(s) {_listed(unknown)}; this model answers {_listed(list(outputs))}",
            field="outputs",
        )
    return list(request.outputs) or list(outputs)


def encode_response(
    model_name: str,
    model_version: str | None,
    request: InferRequest,
    outputs: dict[str, np.ndarray],
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length.

    Only the outputs the request names are answered (all of them when it names none);
    ``parameters`` (e.g. the answering arm) go in the response's ``parameters``.
    """
    chosen = selected_outputs(request, outputs)
    rendered: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in chosen:
        array = np.asarray(outputs[name])
        datatype = datatype_of(array.dtype)
        tensor: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
        if request.outputs.get(name, request.binary_output):
            blob = encode_raw(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_data(array, datatype)
        rendered.append(tensor)
    doc: dict[str, Any] = {"model_name": model_name, "outputs": rendered}
    if model_version is not None:
        doc["model_version"] = model_version
    if request.id is not None:
        doc["id"] = request.id
    if parameters:
        doc["parameters"] = parameters
    header = json.dumps(doc).encode("utf-8")
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _tensor_metadata(name: str, spec_dtype: str, shape: list[int]) -> dict[str, Any]:
    try:
        datatype = datatype_of(np.dtype(spec_dtype))
    except TypeError:  # pandas-only dtypes (category, string[python]) travel as BYTES
        datatype = "BYTES"
    return {"name": name, "datatype": datatype, "shape": shape}


def model_metadata(
    name: str,
    version: str | None,
    platform: str,
    signature: Signature | None,
    output_names: list[str],
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the inputs and outputs the signature describes."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    if signature is not None:
        if isinstance(signature.inputs, TensorSpec):
            inputs.append(
                _tensor_metadata("input-0", signature.inputs.dtype, list(signature.inputs.shape))
            )
        else:
            inputs = [_tensor_metadata(c.name, c.dtype, [-1]) for c in signature.columns]
    for out in output_names:
        if out == "predict" and signature is not None and signature.output is not None:
            outputs.append(
                _tensor_metadata(out, signature.output.dtype, list(signature.output.shape))
            )
        elif out == "predict_proba":
            outputs.append({"name": out, "datatype": "FP64", "shape": [-1, -1]})
        else:
            outputs.append({"name": out, "datatype": "BYTES", "shape": [-1]})
    doc: dict[str, Any] = {
        "name": name,
        "versions": [version] if version is not None else [],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }
    return doc
