"""The prediction log: non-blocking records, exactly-once flushes, crash loss bounds, feedback."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import loopstack
from loopstack.errors import Invalid, StoreUnavailable
from loopstack.serving import PredictionLog, RawJSON
from loopstack.store import Stores
from loopstack.store.artifacts import ArtifactStore, open_blob_store
from loopstack.store.events import EventLog
from loopstack.store.metadata import Database

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def stores(db_url: str, tmp_path: Path) -> Iterator[Stores]:
    db = Database(db_url)
    yield Stores(db, ArtifactStore(db, open_blob_store(str(tmp_path / "blobs"))))
    db.dispose()


@pytest.fixture
def events(stores: Stores, tmp_path: Path) -> EventLog:
    return EventLog(stores, cache_dir=tmp_path / "cache")


class HeldEventLog(EventLog):
    """An event log whose appends wait until released (a slow or hung store)."""

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.appended = threading.Event()

    def append(self, stream: str, table: pa.Table):  # type: ignore[no-untyped-def]
        self.entered.set()
        assert self.release.wait(20)
        segment = super().append(stream, table)
        self.appended.set()
        return segment


class FailingOnceEventLog(EventLog):
    failures = 1

    def append(self, stream: str, table: pa.Table):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the artifact store is down")
        return super().append(stream, table)


def test_records_from_many_threads_land_exactly_once(events: EventLog) -> None:
    plog = PredictionLog(events, flush_interval_s=0.05)

    def work(t: int) -> None:
        for i in range(1250):
            assert plog.record(f"{t}-{i}", "churn", "churn/1", {"p": i}, inputs={"x": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    plog.close()
    ids = plog.read_predictions().column("request_id").to_pylist()
    assert len(ids) == 10_000
    assert set(ids) == {f"{t}-{i}" for t in range(8) for i in range(1250)}
    assert plog.stats.recorded == plog.stats.flushed == 10_000 and plog.stats.dropped == 0
    assert plog.buffered == 0


def test_record_never_waits_for_a_slow_store(stores: Stores) -> None:
    held = HeldEventLog(stores)
    plog = PredictionLog(held, flush_interval_s=3600)
    plog.record("first", "e", "1", 0)
    flusher = threading.Thread(target=plog.flush)
    flusher.start()
    assert held.entered.wait(20)  # the flush now hangs inside the store
    accepted = [plog.record(f"r{i}", "e", "1", i) for i in range(1000)]
    assert all(accepted)
    assert not held.appended.is_set() and plog.stats.flushed == 0  # still hung, yet we returned
    assert plog.buffered == 1000
    held.release.set()
    flusher.join(20)
    plog.close()
    assert plog.read_predictions().num_rows == 1001


def test_a_full_buffer_drops_and_counts(events: EventLog) -> None:
    plog = PredictionLog(events, flush_interval_s=3600, max_buffer=5)
    assert [plog.record(f"r{i}", "e", "1", i) for i in range(7)] == [True] * 5 + [False] * 2
    assert plog.stats.dropped == 2
    plog.close()
    assert not plog.record("late", "e", "1", 0)  # closed: refused, not lost silently
    assert plog.stats.dropped == 3
    assert plog.read_predictions().column("request_id").to_pylist() == [f"r{i}" for i in range(5)]


def test_a_failed_flush_keeps_its_rows_for_the_next(stores: Stores) -> None:
    plog = PredictionLog(FailingOnceEventLog(stores), flush_interval_s=3600)
    plog.record("a", "e", "1", 1)
    assert plog.flush(20)
    assert plog.stats.failed_flushes == 1 and "down" in (plog.stats.last_error or "")
    plog.record("b", "e", "1", 2)
    plog.close()
    assert plog.read_predictions().column("request_id").to_pylist() == ["a", "b"]


def test_values_become_json_duckdb_can_query(events: EventLog) -> None:
    plog = PredictionLog(events, flush_interval_s=3600)
    plog.record(
        "r1",
        "churn",
        "churn/3",
        np.array([0.25, 0.75]),
        inputs={"age": np.int64(41), "score": math.nan, "when": T0},
        features={"f": [1.5, math.inf]},
        arm="b",
        latency_ms=1.25,
        ts=T0,
    )
    assert plog.record("r2", "churn", "churn/3", RawJSON('{"p": [0.5]}'), ts=T0)
    plog.close()
    logged = plog.read_predictions()
    row, raw = logged.to_pylist()
    assert row["ts"] == T0 and row["arm"] == "b" and row["latency_ms"] == 1.25
    assert json.loads(row["inputs"]) == {"age": 41, "score": None, "when": T0.isoformat()}
    assert json.loads(row["features"]) == {"f": [1.5, None]}
    assert raw["output"] == '{"p": [0.5]}' and raw["inputs"] is None  # written as given
    age = duckdb.sql(
        "SELECT (inputs ->> '$.age')::INT AS age, output ->> '$[1]' AS p FROM logged"
        " WHERE request_id = 'r1'"
    )
    assert age.fetchall() == [(41, "0.75")]


def test_feedback_joins_by_request_id(events: EventLog) -> None:
    plog = PredictionLog(events, flush_interval_s=3600)
    for k, endpoint in enumerate(["churn", "churn", "fraud", "churn"]):
        plog.record(f"r{k}", endpoint, "v1", k, ts=T0 + dt.timedelta(seconds=k))
    plog.record_feedback("r0", label=1, ts=T0 + dt.timedelta(minutes=1))
    plog.record_feedback("r0", label=0, reward=1.0, ts=T0 + dt.timedelta(minutes=2))
    plog.record_feedback("r0", reward=0.5, ts=T0 + dt.timedelta(minutes=3))
    plog.record_feedback("r1", reward=2.0, ts=T0 + dt.timedelta(minutes=1))
    plog.record_feedback("unknown", label="x", ts=T0)
    with pytest.raises(Invalid, match="label or a reward"):
        plog.record_feedback("r2")
    plog.close()
    joined = plog.read_with_feedback("churn").to_pylist()
    assert [r["request_id"] for r in joined] == ["r0", "r1", "r3"]
    r0, r1, r3 = joined
    assert (json.loads(r0["label"]), r0["reward"], r0["feedback_count"]) == (0, 1.5, 3)
    assert r0["feedback_ts"] == T0 + dt.timedelta(minutes=3)
    assert (r1["label"], r1["reward"], r1["feedback_count"]) == (None, 2.0, 1)
    assert (r3["label"], r3["reward"], r3["feedback_count"]) == (None, None, 0)
    window = plog.read_with_feedback(
        since=T0 + dt.timedelta(seconds=1), until=T0 + dt.timedelta(seconds=3)
    )
    assert [r["request_id"] for r in window.to_pylist()] == ["r1", "r2"]
    assert plog.read_feedback().num_rows == 5


_CHILD = """
import sys
import time
from loopstack.serving import PredictionLog, RawJSON
from loopstack.store import Stores
from loopstack.store.artifacts import ArtifactStore, open_blob_store
from loopstack.store.events import EventLog
from loopstack.store.metadata import Database

db = Database(sys.argv[1])
events = EventLog(Stores(db, ArtifactStore(db, open_blob_store(sys.argv[2]))))
acked = 0

def on_flush(stream, rows):
    global acked
    acked += rows
    print(acked, plog.stats.dropped, flush=True)

plog = PredictionLog(events, flush_interval_s=0.02, max_buffer=10_000_000, on_flush=on_flush)
i = 0
while True:
    plog.record(f"r{i}", "e", "1", i)
    i += 1
    if i % 1000 == 0:
        time.sleep(0.005)
"""


def test_a_killed_process_loses_only_unflushed_records(tmp_path: Path) -> None:
    db_url, blobs = f"sqlite:///{tmp_path / 'crash.db'}", str(tmp_path / "blobs")
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    src = str(Path(loopstack.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with subprocess.Popen(
        [sys.executable, str(script), db_url, blobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        try:
            lines = [child.stdout.readline().split() for _ in range(3)]
            child.send_signal(signal.SIGKILL)
            child.wait(20)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert all(lines), child.stderr.read()
    acked = [int(line[0]) for line in lines]
    assert acked[0] > 0 and acked == sorted(acked)
    assert lines[-1][1] == "0"  # nothing was dropped before the last acknowledged flush
    assert child.returncode == -signal.SIGKILL
    db = Database(db_url)
    try:
        events = EventLog(Stores(db, ArtifactStore(db, open_blob_store(blobs))))
        stored = [
            int(json.loads(v)) for v in events.read("predictions").column("output").to_pylist()
        ]
    finally:
        db.dispose()
    # everything a completed flush acknowledged is there, once, in order; beyond it at most
    # the rows of a flush the kill did not stop in time, never a duplicate
    assert stored[: acked[-1]] == list(range(acked[-1]))
    assert stored == sorted(set(stored))


def test_a_failed_request_goes_to_its_own_stream_and_never_among_the_predictions(
    events: EventLog,
) -> None:
    from loopstack.serving._prediction_log import ERROR_TEXT_UP_TO

    plog = PredictionLog(events, flush_interval_s=60)
    assert plog.record("r1", "churn", "3", {"predict": [1]}, latency_ms=2.0, ts=T0)
    assert plog.record_error("r2", "churn", "3", 422, "x" * 2000, arm="blue", latency_ms=1.5, ts=T0)
    assert plog.record_error("r3", "churn", "4", 500, "boom", arm="shadow", shadow=True, ts=T0)
    assert plog.buffered == 3
    plog.close()
    assert plog.read_predictions("churn")["request_id"].to_pylist() == ["r1"]
    errors = plog.read_errors("churn").to_pylist()
    assert [(e["request_id"], e["model_version"], e["arm"], e["status"]) for e in errors] == [
        ("r2", "3", "blue", 422),
        ("r3", "4", "shadow", 500),
    ]
    assert errors[0]["error"] == "x" * ERROR_TEXT_UP_TO and errors[0]["latency_ms"] == 1.5
    assert [e["shadow"] for e in errors] == [False, True]
    assert plog.read_errors("other").num_rows == 0
