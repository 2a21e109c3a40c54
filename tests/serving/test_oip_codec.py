"""The Open Inference Protocol codec on its own: requests decoded, tensors checked,
responses encoded (JSON and binary), tabular inputs mapped onto a signature."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest

from loopstack.errors import Invalid
from loopstack.registry.flavors import ColumnSpec, Signature, TensorSpec
from loopstack.serving._oip import (
    InferRequest,
    datatype_of,
    encode_response,
    model_input,
    model_metadata,
    parse_infer_request,
)

COLUMNS = Signature(
    inputs=(ColumnSpec("a", "float64"), ColumnSpec("b", "int64")),
    output=TensorSpec("int64", (-1,)),
)


def _request(*inputs: dict, **extra: object) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def test_json_tensors_decode_in_their_shape_and_datatype() -> None:
    req = parse_infer_request(
        _request(
            {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
            id="r1",
            outputs=[{"name": "predict", "parameters": {"binary_data": True}}],
        )
    )
    x, s = req.inputs
    assert x.array.dtype == np.float32 and x.array.shape == (2, 2) and x.array[1, 1] == 4.5
    assert s.array.tolist() == ["a", "b"]
    assert req.id == "r1" and req.outputs == {"predict": True}


def test_binary_tensors_are_read_after_the_json_header() -> None:
    floats = np.array([[1.5, 2.5]], dtype="<f8")
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"hi", b"there"))
    header = _request(
        {
            "name": "x",
            "shape": [1, 2],
            "datatype": "FP64",
            "parameters": {"binary_data_size": floats.nbytes},
        },
        {
            "name": "w",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(words)},
        },
    )
    req = parse_infer_request(header + floats.tobytes() + words, len(header))
    np.testing.assert_array_equal(req.inputs[0].array, floats)
    assert req.inputs[1].array.tolist() == ["hi", "there"]


@pytest.mark.parametrize(
    ("tensor", "says"),
    [
        ({"name": "x", "shape": [2], "datatype": "FP99", "data": [1, 2]}, "'datatype' must be one"),
        ({"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2]}, "so 3 values; got 2"),
        ({"name": "x", "shape": [2], "datatype": "INT64", "data": [1.5, 2]}, "holds numbers"),
        ({"name": "x", "shape": [2], "datatype": "FP64", "data": ["a", "b"]}, "holds strings"),
        ({"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}, "outside INT8's range"),
        ({"name": "x", "shape": [-1], "datatype": "FP64", "data": [1]}, "whole numbers >= 0"),
        ({"name": "x", "shape": [1], "datatype": "FP64"}, "neither 'data' nor"),
        ({"shape": [1], "datatype": "FP64", "data": [1]}, "needs a 'name'"),
    ],
)
def test_a_flawed_tensor_is_invalid_naming_it(tensor: dict, says: str) -> None:
    with pytest.raises(Invalid, match=says):
        parse_infer_request(_request(tensor))


def test_malformed_bodies_are_invalid() -> None:
    with pytest.raises(Invalid, match="not valid JSON"):
        parse_infer_request(b"{nope")
    with pytest.raises(Invalid, match="non-empty list"):
        parse_infer_request(b'{"inputs": []}')
    with pytest.raises(Invalid, match="Inference-Header-Content-Length is 99"):
        parse_infer_request(b'{"inputs": []}', 99)
    header = _request(
        {"name": "x", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}
    )
    with pytest.raises(Invalid, match="runs past"):
        parse_infer_request(header + b"\0" * 8, len(header))
    with pytest.raises(Invalid, match="so 16 bytes"):
        parse_infer_request(
            _request(
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 8},
                }
            )
            + b"\0" * 8,
            len(
                _request(
                    {
                        "name": "x",
                        "shape": [2],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": 8},
                    }
                )
            ),
        )


def test_tabular_input_per_column_or_as_one_matrix() -> None:
    per_column = parse_infer_request(
        _request(
            {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [1, 2]},
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [0.5, 1.5]},
        )
    ).inputs
    frame = model_input(per_column, COLUMNS)
    assert list(frame.columns) == ["a", "b"] and frame["b"].tolist() == [1, 2]
    matrix = parse_infer_request(
        _request({"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]})
    ).inputs
    pd.testing.assert_frame_equal(
        model_input(matrix, COLUMNS), pd.DataFrame({"a": [1.0, 3.0], "b": [2.0, 4.0]})
    )


def test_tabular_input_names_what_is_missing_unknown_or_misshapen() -> None:
    def inputs(*tensors: dict) -> list:
        return parse_infer_request(_request(*tensors)).inputs

    with pytest.raises(Invalid, match="missing input.*'b'"):
        model_input(inputs({"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}), COLUMNS)
    with pytest.raises(Invalid, match="unknown input.*'zzz'"):
        model_input(
            inputs(
                {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                {"name": "zzz", "shape": [1], "datatype": "FP64", "data": [1]},
            ),
            COLUMNS,
        )
    with pytest.raises(Invalid, match=r"as \[N, 2\]"):
        model_input(
            inputs({"name": "m", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}), COLUMNS
        )


def test_responses_in_json_and_binary() -> None:
    labels = np.array(["yes", "no"], dtype=object)
    proba = np.array([[0.25, 0.75], [0.5, 0.5]])
    outputs = {"predict": labels, "predict_proba": proba}
    body, length = encode_response("m", "3", InferRequest("r", []), outputs)
    assert length is None
    doc = json.loads(body)
    assert doc["model_name"] == "m" and doc["model_version"] == "3" and doc["id"] == "r"
    assert doc["outputs"][0] == {
        "name": "predict",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["yes", "no"],
    }
    body, length = encode_response(
        "m", None, InferRequest(None, [], {"predict_proba": True}), outputs
    )
    assert length is not None
    header = json.loads(body[:length])
    assert [o["name"] for o in header["outputs"]] == ["predict_proba"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 32}
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<f8").reshape(2, 2), proba)
    with pytest.raises(Invalid, match="unknown output.*'nope'"):
        encode_response("m", None, InferRequest(None, [], {"nope": False}), outputs)


def test_metadata_and_datatypes_from_the_signature() -> None:
    doc = model_metadata("m", "2", "sklearn", COLUMNS, ["predict", "predict_proba"])
    assert doc["inputs"] == [
        {"name": "a", "datatype": "FP64", "shape": [-1]},
        {"name": "b", "datatype": "INT64", "shape": [-1]},
    ]
    assert [o["name"] for o in doc["outputs"]] == ["predict", "predict_proba"]
    assert doc["versions"] == ["2"]
    assert [datatype_of(t) for t in ("bool", "uint8", "int32", "float16", "<U3", object)] == [
        "BOOL",
        "UINT8",
        "INT32",
        "FP16",
        "BYTES",
        "BYTES",
    ]
