"""Signatures: inference from samples, and the checks made on prediction input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopstack.errors import Invalid
from loopstack.registry.flavors import ColumnSpec, Signature, TensorSpec, infer_signature
from loopstack.registry.flavors._enforce import enforce_signature

FRAME_SIGNATURE = Signature(
    inputs=(ColumnSpec("age", "int64"), ColumnSpec("income", "float64"), ColumnSpec("city", "str")),
    output=TensorSpec("float64", (-1,)),
)


def test_inferred_from_a_dataframe_and_the_output() -> None:
    frame = pd.DataFrame({"age": [30, 40], "income": [1.5, 2.5], "city": ["a", "b"]})
    signature = infer_signature(frame, np.array([0.1, 0.2]))
    assert signature == FRAME_SIGNATURE
    assert Signature.from_dict(signature.to_dict()) == signature


@pytest.mark.parametrize(
    "sample",
    [
        {"age": [30, 40], "income": [1.5, 2.5], "city": ["a", "b"]},
        [{"age": 30, "income": 1.5, "city": "a"}, {"age": 40, "income": 2.5, "city": "b"}],
    ],
)
def test_dicts_and_records_are_frames(sample: object) -> None:
    assert infer_signature(sample).columns == FRAME_SIGNATURE.columns


def test_arrays_keep_dtype_and_trailing_shape() -> None:
    signature = infer_signature(np.zeros((5, 3, 2), dtype=np.float32), np.zeros((5, 2)))
    assert signature.inputs == TensorSpec("float32", (-1, 3, 2))
    assert signature.output == TensorSpec("float64", (-1, 2))
    assert not signature.is_tabular


def test_malformed_signature_dict_is_invalid() -> None:
    with pytest.raises(Invalid, match="a signature must be"):
        Signature.from_dict({"inputs": {"type": "graph"}})


def test_integers_widen_to_floats_and_extra_columns_drop() -> None:
    frame = pd.DataFrame({"city": ["x"], "extra": [1], "income": [3], "age": [7]})
    checked = enforce_signature(frame, FRAME_SIGNATURE)
    assert list(checked.columns) == ["age", "income", "city"]
    assert checked["income"].dtype == np.float64 and checked["income"].iloc[0] == 3.0


def test_floats_do_not_narrow_to_integers() -> None:
    frame = pd.DataFrame({"age": [1.5], "income": [1.0], "city": ["x"]})
    with pytest.raises(Invalid, match="column 'age' should be int64, got float64"):
        enforce_signature(frame, FRAME_SIGNATURE)


def test_every_bad_column_is_named_at_once() -> None:
    frame = pd.DataFrame({"age": ["old"], "income": ["rich"], "city": ["x"]})
    with pytest.raises(Invalid) as raised:
        enforce_signature(frame, FRAME_SIGNATURE)
    assert "'age' should be int64" in str(raised.value)
    assert "'income' should be float64" in str(raised.value)


def test_object_column_of_numbers_is_accepted() -> None:
    frame = pd.DataFrame(
        {"age": pd.Series([1, 2], dtype=object), "income": [1.0, 2.0], "city": ["x", "y"]}
    )
    assert enforce_signature(frame, FRAME_SIGNATURE)["age"].dtype == np.int64


def test_missing_columns_are_all_named() -> None:
    with pytest.raises(Invalid, match=r"missing column\(s\) 'age', 'city'"):
        enforce_signature({"income": [1.0]}, FRAME_SIGNATURE)


def test_array_for_a_frame_signature_needs_the_column_count() -> None:
    with pytest.raises(
        Invalid,
        match=r"expects 3 columns \(age, income, city\); got an array "
        r"of shape \(1, 2\)",
    ):
        enforce_signature(np.zeros((1, 2)), FRAME_SIGNATURE)


def test_tensor_signature_checks_shape_and_kind() -> None:
    signature = Signature(inputs=TensorSpec("float32", (-1, 3)))
    assert enforce_signature([[1, 2, 3]], signature).dtype == np.float32  # ints widen
    with pytest.raises(Invalid, match=r"shape \(N, 3\); got shape \(1, 4\)"):
        enforce_signature(np.zeros((1, 4)), signature)
    with pytest.raises(Invalid, match=r"shape \(N, 3\); got shape \(3,\)"):
        enforce_signature(np.zeros(3), signature)
    with pytest.raises(Invalid, match="expects an array of float32; got bool"):
        enforce_signature(np.zeros((1, 3), dtype=bool), signature)
