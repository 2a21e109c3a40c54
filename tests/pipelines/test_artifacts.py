"""Typed artifacts: each kind round-trips, encoding is deterministic, a wrong kind is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopstack.errors import Invalid
from loopstack.pipelines._artifacts import (
    decode,
    encode,
    kind_for,
    load_artifact,
    store_artifact,
)
from loopstack.store.artifacts import LocalBlobStore
from tests.pipelines.flows import Model

CASES: list[tuple[Any, Any, str]] = [
    (pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]}), pd.DataFrame, "dataframe"),
    (pa.table({"a": [1.5, 2.5]}), pa.Table, "arrow"),
    (np.arange(6, dtype="int32").reshape(2, 3), np.ndarray, "ndarray"),
    ({"b": [1, 2.5, None, True], "a": "text"}, dict, "json"),
    (7, int, "json"),
    ({"auc": 0.9, "n": 3}, dict[str, float], "metrics"),
    (Model(2.0, 1.0), Model, "pickle"),
]


@pytest.mark.parametrize(("value", "declared", "kind"), CASES)
def test_each_kind_round_trips_through_the_blob_store(
    value: Any, declared: Any, kind: str, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path)
    ref = store_artifact(blobs, "out", value, declared)
    assert ref.kind == kind and ref.size > 0 and len(ref.sha256) == 64
    back = load_artifact(blobs, ref)
    if kind == "dataframe":
        pd.testing.assert_frame_equal(back, value)
    elif kind == "arrow":
        assert back.equals(value)
    elif kind == "ndarray":
        np.testing.assert_array_equal(back, value)
        assert back.dtype == value.dtype
    elif kind == "pickle":
        assert (back.w, back.b) == (value.w, value.b)
    elif kind == "metrics":
        assert back == {"auc": 0.9, "n": 3.0}
    else:
        assert back == value


@pytest.mark.parametrize(("value", "declared", "kind"), CASES)
def test_the_same_value_encodes_to_the_same_bytes(value: Any, declared: Any, kind: str) -> None:
    first = encode(value, kind)
    again = encode(decode(first, kind), kind) if kind != "pickle" else encode(value, kind)
    assert first == again


def test_json_is_canonical_whatever_the_key_order() -> None:
    assert encode({"b": 1, "a": 2}, "json") == encode({"a": 2, "b": 1}, "json") == b'{"a":2,"b":1}'


def test_unannotated_outputs_get_the_kind_of_their_value() -> None:
    assert kind_for(pd.DataFrame({"a": [1]})) == "dataframe"
    assert kind_for([1, {"a": None}]) == "json"
    assert kind_for({1: "int key"}) == "pickle"
    assert kind_for(Model(1, 1)) == "pickle"


@pytest.mark.parametrize(
    ("value", "declared"),
    [
        ({"a": 1}, pd.DataFrame),
        (pd.DataFrame({"a": [1]}), np.ndarray),
        ({"auc": "high"}, dict[str, float]),
        (object(), int),
    ],
)
def test_a_value_that_does_not_match_its_declared_kind_is_refused(
    value: Any, declared: Any
) -> None:
    with pytest.raises(Invalid, match="is declared as .* got "):
        kind_for(value, declared, what="the output 'x'")


def test_an_object_array_is_refused_as_ndarray() -> None:
    with pytest.raises(Invalid, match="dtype object"):
        encode(np.array([object()]), "ndarray")
