"""The event log contract, run over SQLite and PostgreSQL metadata and local and memory blobs."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from sqlalchemy import text

from loopstack.errors import Invalid
from loopstack.store import Stores
from loopstack.store.artifacts import ArtifactStore, open_blob_store
from loopstack.store.events import EventLog
from loopstack.store.metadata import Database

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["local", "memory"])
def stores(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Stores]:
    db = Database(db_url)
    url = str(tmp_path / "blobs") if request.param == "local" else f"memory://ls-{uuid.uuid4().hex}"
    yield Stores(db, ArtifactStore(db, open_blob_store(url)))
    db.dispose()


@pytest.fixture
def log(stores: Stores, tmp_path: Path) -> EventLog:
    return EventLog(stores, project_id=0, cache_dir=tmp_path / "cache")


def _rows(start: int, n: int, **extra: object) -> pa.Table:
    ts = [T0 + dt.timedelta(seconds=start + i) for i in range(n)]
    cols: dict[str, object] = {
        "ts": pa.array(ts, pa.timestamp("us", "UTC")),
        "i": range(start, start + n),
    }
    cols.update({k: [v] * n for k, v in extra.items()})
    return pa.table(cols)


def _audit_count(stores: Stores) -> int:
    return int(
        stores.db.read(lambda c: c.execute(text("SELECT count(*) FROM audit_events")).scalar())
    )


def test_append_then_read_windows(log: EventLog, stores: Stores) -> None:
    before = _audit_count(stores)
    first = log.append("predictions", _rows(0, 10))
    log.append("predictions", _rows(10, 10))
    log.append("other", _rows(0, 5))
    assert first is not None and first.rows == 10
    assert _audit_count(stores) == before  # the event log never writes the audit chain
    assert log.read("predictions").column("i").to_pylist() == list(range(20))
    window = log.read("predictions", T0 + dt.timedelta(seconds=5), T0 + dt.timedelta(seconds=15))
    assert window.column("i").to_pylist() == list(range(5, 15))  # since included, until not
    late = log.read("predictions", since=T0 + dt.timedelta(seconds=12))
    assert late.column("i").to_pylist() == list(range(12, 20))
    assert window.schema.field("ts").type == pa.timestamp("us", "UTC")
    assert [s.rows for s in log.segments("predictions", since=T0 + dt.timedelta(seconds=12))] == [
        10
    ]


def test_reads_open_only_overlapping_segments(log: EventLog) -> None:
    for k in range(5):
        log.append("s", _rows(k * 100, 10))
    picked = log.segments("s", T0 + dt.timedelta(seconds=205), T0 + dt.timedelta(seconds=305))
    assert [s.min_ts for s in picked] == [
        int((T0 + dt.timedelta(seconds=200)).timestamp() * 1000),
        int((T0 + dt.timedelta(seconds=300)).timestamp() * 1000),
    ]
    assert log.read("s", until=T0).num_rows == 0


def test_ties_keep_append_order_and_columns_union_by_name(log: EventLog) -> None:
    same = pa.array([T0] * 3, pa.timestamp("us", "UTC"))
    log.append("s", pa.table({"ts": same, "i": [0, 1, 2]}))
    log.append("s", pa.table({"ts": same, "i": [3, 4, 5], "extra": ["a", "b", "c"]}))
    out = log.read("s")
    assert out.column("i").to_pylist() == [0, 1, 2, 3, 4, 5]
    assert out.column("extra").to_pylist() == [None, None, None, "a", "b", "c"]


def test_the_same_bytes_appended_twice_read_twice(log: EventLog) -> None:
    first, second = log.append("s", _rows(0, 2)), log.append("s", _rows(0, 2))
    assert first is not None and second is not None and first.digest == second.digest
    assert log.read("s").column("i").to_pylist() == [0, 0, 1, 1]


def test_where_filters_by_equal_columns(log: EventLog) -> None:
    log.append("p", _rows(0, 4, endpoint="churn"))
    log.append("p", _rows(4, 4, endpoint="fraud"))
    assert log.read("p", where={"endpoint": "fraud"}).column("i").to_pylist() == [4, 5, 6, 7]
    with pytest.raises(Invalid):
        log.read("p", where={"no_such_column": 1})
    with pytest.raises(Invalid, match="column name"):
        log.read("p", where={'x" OR 1=1 --': 1})


def test_naive_and_zoned_timestamps_are_instants(log: EventLog) -> None:
    paris = ZoneInfo("Europe/Paris")
    naive = pa.array([dt.datetime(2026, 12, 1, 12, 0)], pa.timestamp("ms"))
    zoned = pa.array(
        [dt.datetime(2026, 12, 1, 13, 0, tzinfo=paris)], pa.timestamp("ns", "Europe/Paris")
    )
    log.append("s", pa.table({"ts": naive, "i": [0]}))
    log.append("s", pa.table({"ts": zoned, "i": [1]}))  # 13:00 Paris is 12:00 UTC
    assert log.read("s", since=T0, until=T0 + dt.timedelta(microseconds=1)).num_rows == 2
    ms = int(T0.timestamp() * 1000)
    assert log.read("s", since=ms, until=ms + 1).num_rows == 2


def test_projects_are_separate_and_empty_reads_keep_the_schema(
    stores: Stores, tmp_path: Path
) -> None:
    a = EventLog(stores, project_id=0, cache_dir=tmp_path / "c")
    b = EventLog(stores, project_id=7, cache_dir=tmp_path / "c")
    a.append("s", _rows(0, 3))
    assert b.read("s").num_rows == 0
    schema = pa.schema([("ts", pa.timestamp("us", "UTC")), ("i", pa.int64())])
    assert b.read("s", schema=schema).schema == schema
    assert a.append("s", _rows(0, 0)) is None


@pytest.mark.parametrize(
    "bad",
    [
        pa.table({"i": [1]}),
        pa.table({"ts": [1], "i": [1]}),
        pa.table({"ts": pa.array([None], pa.timestamp("us")), "i": [1]}),
    ],
)
def test_tables_without_a_usable_ts_are_refused(log: EventLog, bad: pa.Table) -> None:
    with pytest.raises(Invalid, match="'ts'"):
        log.append("s", bad)


@pytest.mark.parametrize("stream", ["", "Upper", "../x", "a b", "x" * 200])
def test_bad_stream_names_are_refused(log: EventLog, stream: str) -> None:
    with pytest.raises(Invalid, match="'stream'"):
        log.append(stream, _rows(0, 1))
