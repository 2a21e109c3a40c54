"""Dataset versions: dedupe by content, round trip, listing, bad input, audit, both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopstack as ls
from loopstack.errors import Invalid, NotFound


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "id": np.arange(200),
            "amount": rng.normal(50, 5, 200).round(2),
            "city": rng.choice(["paris", "lyon", "nice"], 200),
            "ts": pd.date_range("2024-01-01", periods=200, freq="h"),
        }
    )


def _count(db_url: str, table: str) -> int:
    from sqlalchemy import text

    from loopstack.store.metadata import open_database

    db = open_database(db_url)
    return int(db.read(lambda c: c.execute(text(f"SELECT count(*) FROM {table}")).scalar()))


def test_register_dedupes_identical_content_across_input_types(
    use_db: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    dv = ls.register_dataset("orders", frame, description="orders of May")
    assert (dv.name, dv.version, dv.num_rows, dv.num_columns) == ("orders", 1, 200, 4)
    assert dv.description == "orders of May"
    path = tmp_path / "orders.parquet"
    frame.to_parquet(path, index=False)
    # the same rows again, as a DataFrame, an Arrow table, a Parquet file and a directory
    for same in (frame.copy(), pa.Table.from_pandas(frame), path, tmp_path):
        again = ls.register_dataset("orders", same)
        assert (again.version, again.digest) == (1, dv.digest)
    assert _count(use_db, "dataset_versions") == 1
    changed = frame.assign(amount=frame.amount + 1)
    dv2 = ls.register_dataset("orders", changed)
    assert dv2.version == 2 and dv2.digest != dv.digest
    assert ls.get_dataset("orders").version == 2
    assert ls.get_dataset("orders", "latest").version == 2
    assert ls.get_dataset("orders", 1).digest == dv.digest
    assert [v.version for v in ls.list_datasets("orders")] == [2, 1]
    ls.register_dataset("users", frame[["id"]])
    assert [(v.name, v.version) for v in ls.list_datasets()] == [("orders", 2), ("users", 1)]


def test_round_trip_to_pandas_and_arrow(use_db: str, frame: pd.DataFrame) -> None:
    dv = ls.register_dataset("orders", frame)
    back = ls.get_dataset("orders").to_pandas()
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["id"].dtype == np.int64
    assert ls.get_dataset("orders").to_arrow().num_rows == 200
    assert pq.read_table(dv.path).num_rows == 200
    assert dv.schema["columns"][0] == {"name": "id", "type": "int64"}
    assert dv.files == {"data.parquet": dv.digest}
    assert dv.artifact_path == f"datasets/0/orders/{dv.digest}/data.parquet"


def test_csv_and_source_uri(use_db: str, tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    dv = ls.register_dataset("small", path)
    assert dv.source_uri == str(path.resolve())
    assert dv.to_pandas()["a"].tolist() == [1, 2]
    assert dv.profile["columns"]["b"]["top"] == [
        {"value": "x", "count": 1},
        {"value": "y", "count": 1},
    ]


def test_writes_are_audited(use_db: str, frame: pd.DataFrame) -> None:
    from loopstack.store import audit
    from loopstack.store.metadata import open_database

    dv = ls.register_dataset("orders", frame)
    events = audit.events(open_database(use_db), object_type="dataset")
    assert [(e["action"], e["object_id"]) for e in events] == [("dataset.register", "orders/1")]
    assert audit.verify(open_database(use_db)).ok
    ls.register_dataset("orders", frame)  # a dedupe writes nothing
    assert len(audit.events(open_database(use_db), object_type="dataset")) == 1
    assert dv.version == 1


@pytest.mark.parametrize("bad", [42, None, {"a": [1]}, [1, 2, 3], object()])
def test_bad_input_is_invalid_naming_what_came(use_db: str, bad: object) -> None:
    with pytest.raises(Invalid, match="expected a pandas DataFrame.*got " + type(bad).__name__):
        ls.register_dataset("orders", bad)
    assert _count(use_db, "dataset_versions") == 0
    assert _count(use_db, "artifact_entries") == 0


def test_missing_file_is_not_found_and_writes_nothing(use_db: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    with pytest.raises(NotFound, match="nope.parquet"):
        ls.register_dataset("orders", missing)
    with pytest.raises(NotFound, match="no dataset named 'orders'"):
        ls.get_dataset("orders")
    assert _count(use_db, "dataset_versions") == 0


def test_bad_name_version_and_file_type(use_db: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="dataset name"):
        ls.register_dataset("../etc", frame)
    ls.register_dataset("orders", frame)
    with pytest.raises(Invalid, match="integer or 'latest'"):
        ls.get_dataset("orders", "newest")
    with pytest.raises(NotFound, match="has no version 7"):
        ls.get_dataset("orders", 7)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(Invalid, match=r"\.parquet or \.csv"):
        ls.register_dataset("notes", other)
