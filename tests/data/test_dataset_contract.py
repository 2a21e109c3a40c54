"""One contract for datasets and validation results: the same calls give the same results
and the same errors against SQLite, PostgreSQL, and a live server over each."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.data import dataset_store, get_validation_result
from loopstack.errors import Forbidden, Invalid, NotFound


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "id": np.arange(100),
            "amount": rng.normal(50, 5, 100).round(2),
            "city": rng.choice(["paris", "lyon"], 100),
            "ts": pd.date_range("2024-01-01", periods=100, freq="h"),
        }
    )


def _digest(df: pd.DataFrame) -> str:
    from loopstack.data._digest import canonical_table, write_canonical
    from loopstack.data._sources import to_arrow

    with tempfile.TemporaryDirectory() as tmp:
        return write_canonical(canonical_table(to_arrow(df)), Path(tmp) / "d.parquet")


def test_the_seam_picks_the_backend(domain_backend: str) -> None:
    from loopstack.data._datasets import DatasetStore
    from loopstack.data._rest_store import RestDatasetStore

    want = RestDatasetStore if domain_backend.startswith("server") else DatasetStore
    assert type(dataset_store()) is want


def test_register_dedup_versions_and_round_trip(domain_backend: str, frame: pd.DataFrame) -> None:
    dv = ls.register_dataset("orders", frame, description="May")
    assert (dv.name, dv.version, dv.num_rows, dv.num_columns) == ("orders", 1, 100, 4)
    assert dv.digest == _digest(frame)  # the content digest is the same everywhere
    assert dv.description == "May" and dv.profile["columns"]["amount"]["count"] == 100
    again = ls.register_dataset("orders", frame.copy())
    assert (again.version, again.digest) == (1, dv.digest)
    dv2 = ls.register_dataset("orders", frame.assign(amount=frame.amount + 1))
    assert dv2.version == 2 and dv2.digest != dv.digest
    ls.register_dataset("users", frame[["id"]])
    assert ls.get_dataset("orders").version == 2
    assert ls.get_dataset("orders", "latest").version == 2
    assert ls.get_dataset("orders", 1).digest == dv.digest
    assert [v.version for v in ls.list_datasets("orders")] == [2, 1]
    assert [(v.name, v.version) for v in ls.list_datasets()] == [("orders", 2), ("users", 1)]
    back = ls.get_dataset("orders", 1).to_pandas()
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert ls.get_dataset("orders", 1).to_arrow().num_rows == 100


def test_errors_are_the_same_class_and_message(domain_backend: str, frame: pd.DataFrame) -> None:
    ls.register_dataset("orders", frame)
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        ls.get_dataset("nope")
    with pytest.raises(NotFound, match="dataset 'orders' has no version 9"):
        ls.get_dataset("orders", 9)
    with pytest.raises(Invalid, match="must be an integer or 'latest'; got 'abc'"):
        ls.get_dataset("orders", "abc")
    with pytest.raises(Invalid, match="a dataset name must start with a letter"):
        ls.register_dataset("-bad", frame)
    with pytest.raises(Invalid, match="description must be text; got int"):
        ls.register_dataset("orders", frame, description=5)  # type: ignore[arg-type]
    with pytest.raises(Invalid, match="at least one column"):
        ls.register_dataset("empty", pd.DataFrame())
    with pytest.raises(NotFound, match="no validation result 'nope'"):
        get_validation_result("nope")
    assert [v.version for v in ls.list_datasets("orders")] == [1]
    assert ls.list_datasets("empty") == []


def test_validation_results_are_stored_and_read_back(
    domain_backend: str, frame: pd.DataFrame
) -> None:
    dv = ls.register_dataset("orders", frame.assign(amount=frame.amount.where(frame.id > 2)))
    suite = ls.Suite(
        "gate",
        [
            {"type": "null_rate", "column": "amount", "max": 0},
            {"type": "row_count", "min": 1},
        ],
    )
    report = suite.validate(dv)
    assert report.result_id and report.created_at > 0 and report.passed is False
    stored = get_validation_result(report.result_id)
    assert stored.dataset == "orders/1" and stored.passed is False
    assert [r.to_dict() for r in stored.results] == [r.to_dict() for r in report.results]
    assert stored.results[0].failing_count == 3
    assert stored.suite_definition == suite.to_dict()
    other = ls.Suite("other", [{"type": "row_count", "min": 1}]).validate(frame)
    store = dataset_store()
    assert [r.result_id for r in store.list_validations(dataset="orders")] == [report.result_id]
    assert {r.result_id for r in store.list_validations()} == {report.result_id, other.result_id}


def test_a_viewer_reads_and_is_refused_every_write(
    viewer_server: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame
) -> None:
    _, root, viewer = viewer_server
    monkeypatch.setenv("LOOPSTACK_TOKEN", root)
    dv = ls.register_dataset("orders", frame)
    result_id = ls.Suite("g", [{"type": "row_count", "min": 1}]).validate(dv).result_id
    monkeypatch.setenv("LOOPSTACK_TOKEN", viewer)
    assert ls.get_dataset("orders").digest == dv.digest
    assert len(ls.get_dataset("orders").to_pandas()) == 100
    assert get_validation_result(str(result_id)).passed
    with pytest.raises(Forbidden, match="needs the role 'data-scientist'"):
        ls.register_dataset("orders", frame.head(3))
    with pytest.raises(Forbidden, match="needs the role 'data-scientist'"):
        ls.Suite("g", [{"type": "row_count", "min": 1}]).validate(dv)
    assert [v.version for v in ls.list_datasets("orders")] == [1]


def test_an_unknown_project_is_refused_alike(
    domain_backend: str, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    ls.register_dataset("orders", frame)
    monkeypatch.setenv("LOOPSTACK_PROJECT", "nope")
    with pytest.raises(NotFound, match="no project named 'nope'"):
        ls.get_dataset("orders")
    with pytest.raises(NotFound, match="no project named 'nope'"):
        ls.register_dataset("orders", frame.head(2))
