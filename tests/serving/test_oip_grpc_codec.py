"""The gRPC tensor codec on its own, on loopstack's generated messages: each datatype's
typed contents and raw bytes decode alike, and outputs encode as raw tensors."""

from __future__ import annotations

import numpy as np
import pytest

from loopstack.errors import Invalid
from loopstack.serving._oip import InferRequest, decode_raw, encode_raw

pytest.importorskip("grpc")
from loopstack.server._proto import grpc_predict_v2_pb2 as pb  # noqa: E402
from loopstack.serving._oip_grpc import (  # noqa: E402
    CONTENTS_FIELDS,
    encode_outputs,
    parameter_value,
    parse_infer_message,
)

VALUES = {
    "BOOL": [True, False, True],
    "UINT8": [0, 7, 255],
    "INT16": [-3, 0, 300],
    "UINT64": [0, 1, 2**64 - 1],
    "INT64": [-(2**63), 0, 2**63 - 1],
    "FP32": [0.5, -1.25, 3.0],
    "FP64": [0.1, 2.0, -3.5],
    "BYTES": [b"a", "é".encode(), b"\xff"],
}


@pytest.mark.parametrize("datatype", list(VALUES))
def test_typed_and_raw_contents_decode_alike(datatype: str) -> None:
    typed = pb.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="x", datatype=datatype, shape=[3])
    getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(VALUES[datatype])
    from_typed = parse_infer_message(typed).inputs[0].array

    raw = pb.ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype=datatype, shape=[3])
    raw.raw_input_contents.append(encode_raw(from_typed, datatype))
    from_raw = parse_infer_message(raw).inputs[0].array

    assert from_typed.shape == from_raw.shape == (3,)
    assert list(from_typed) == list(from_raw)
    if datatype == "BYTES":  # UTF-8 text becomes str; other bytes stay bytes
        assert list(from_typed) == ["a", "é", b"\xff"]
    else:
        np.testing.assert_array_equal(from_typed, np.asarray(VALUES[datatype]))


def test_fp16_travels_raw_and_outputs_encode_raw() -> None:
    half = np.array([[1.5, -2.0]], dtype="<f2")
    message = pb.ModelInferRequest(model_name="m", id="r")
    message.inputs.add(name="h", datatype="FP16", shape=[1, 2])
    message.raw_input_contents.append(half.tobytes())
    message.outputs.add(name="predict")
    parsed = parse_infer_message(message)
    assert parsed.id == "r" and parsed.outputs == {"predict": True}
    np.testing.assert_array_equal(parsed.inputs[0].array, half)

    outputs = {"predict": np.array(["yes", "no"]), "predict_proba": np.eye(2)}
    (only,) = encode_outputs(parsed, outputs)
    assert (only.name, only.datatype, only.shape) == ("predict", "BYTES", [2])
    assert list(decode_raw(only.data, "predict", "BYTES", (2,))) == ["yes", "no"]
    every = encode_outputs(InferRequest(None, parsed.inputs), outputs)
    assert [(t.name, t.datatype, t.shape) for t in every] == [
        ("predict", "BYTES", [2]),
        ("predict_proba", "FP64", [2, 2]),
    ]
    with pytest.raises(Invalid, match="unknown output"):
        encode_outputs(InferRequest(None, parsed.inputs, {"zz": True}), outputs)


def test_parameters_read_whichever_kind_is_set() -> None:
    message = pb.ModelInferRequest()
    message.parameters["a"].string_param = "k"
    message.parameters["b"].int64_param = 7
    message.parameters["c"].bool_param = False
    message.parameters["d"].SetInParent()  # a kind this copy of the protocol lacks
    assert [parameter_value(message.parameters[k]) for k in "abcd"] == ["k", 7, False, None]
