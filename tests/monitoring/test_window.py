"""Windows of a live serving app's prediction log, flattened: what was sent (records,
columns, OIP tensors) comes back one row per model row with the model's predictions and
probabilities; each segment is a part; shadows are left out; bad rows are counted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopstack.errors import Invalid
from loopstack.monitoring import (
    SegmentCache,
    flatten_predictions,
    read_window,
    skipped_requests,
    window_batches,
)
from loopstack.monitoring._window import to_datetime
from loopstack.server import create_serving_app
from loopstack.serving import EndpointSpec, PredictionLog, ServingRuntime
from loopstack.serving._prediction_log import predictions_schema, to_json
from loopstack.store import open_stores
from loopstack.store.events import EventLog
from tests.conftest import ThreadedServer
from tests.serving.conftest import log_models


@dataclass
class Live:
    url: str
    plog: PredictionLog
    events: EventLog
    frame: pd.DataFrame
    clf: Any


@pytest.fixture
def live() -> Iterator[Live]:
    """The iris classifier served over HTTP, with a prediction log flushed on demand."""
    X, clf, _ = log_models()
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    events = EventLog(open_stores())
    plog = PredictionLog(events, flush_interval_s=60)
    app = create_serving_app(runtime, start=False, prediction_log=plog)
    try:
        with ThreadedServer(app) as server:
            yield Live(server.url, plog, events, X, clf)
    finally:
        plog.close()


def _predict(live: Live, body: dict[str, Any], rid: str) -> None:
    got = httpx.post(
        f"{live.url}/endpoints/iris/predict", json=body, headers={"X-Request-ID": rid}, timeout=30
    )
    assert got.status_code == 200, got.text


def test_records_columns_and_tensors_come_back_as_sent(live: Live) -> None:
    X = live.frame
    cols = list(X.columns)
    _predict(live, {"records": X.iloc[0:3].to_dict("records")}, "rec")
    _predict(live, {"columns": X.iloc[3:5].to_dict("list")}, "col")
    assert live.plog.flush(20)
    # OIP v2: one tensor per column ([N]), in a second segment
    tensors = [
        {"name": c, "shape": [2], "datatype": "FP64", "data": X.iloc[5:7][c].tolist()} for c in cols
    ]
    infer = httpx.post(
        f"{live.url}/v2/models/iris/infer",
        json={"id": "oip", "inputs": tensors},
        headers={"X-Request-ID": "oip"},
        timeout=30,
    )
    assert infer.status_code == 200, infer.text
    assert live.plog.flush(20)

    parts = list(window_batches("iris", events=live.events))
    assert len(parts) == 2 and parts[0].segment_id != parts[1].segment_id
    assert [p.n_requests for p in parts] == [2, 1] and all(p.whole for p in parts)
    flat = read_window("iris", "1h", events=live.events)
    assert flat.num_rows == 7 and skipped_requests(flat) == 0
    by_parts = [r for p in parts for r in p.table.to_pylist()]
    assert by_parts == flat.to_pylist() and [p.skipped for p in parts] == [0, 0]
    assert flat["row"].type == pa.int32()
    got = flat.to_pandas()
    oip_rid = got["request_id"].iloc[-1]  # the OIP route's request id
    assert got["request_id"].tolist() == ["rec"] * 3 + ["col"] * 2 + [oip_rid] * 2
    assert got["row"].tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert set(got["endpoint"]) == {"iris"} and set(got["model_version"]) == {"1"}
    np.testing.assert_allclose(got[cols].to_numpy(), X.iloc[0:7].to_numpy())
    assert got["prediction"].tolist() == live.clf.predict(X.iloc[0:7]).tolist()
    proba = got[[f"proba_{k}" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(proba, live.clf.predict_proba(X.iloc[0:7]), rtol=1e-9)
    assert (got["latency_ms"] > 0).all()
    # by default the window is read from the configured home's event log, as serving writes it
    assert read_window("iris", "1h").equals(flat)


def test_a_2d_tensor_is_name_0_to_name_k(live: Live) -> None:
    X = live.frame
    data = X.iloc[0:3].to_numpy().ravel().tolist()
    tensor = {"name": "x", "shape": [3, 4], "datatype": "FP64", "data": data}
    infer = httpx.post(f"{live.url}/v2/models/iris/infer", json={"inputs": [tensor]}, timeout=30)
    assert infer.status_code == 200, infer.text
    assert live.plog.flush(20)
    flat = read_window("iris", events=live.events).to_pandas()
    np.testing.assert_allclose(flat[[f"x_{j}" for j in range(4)]].to_numpy(), X.iloc[0:3])
    assert flat["prediction"].tolist() == live.clf.predict(X.iloc[0:3]).tolist()


def _log_table(rows: list[tuple[str, Any, Any, Any, bool]]) -> pa.Table:
    """A predictions-stream table as the log writes it (``inputs`` given as text is kept)."""
    n = len(rows)
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return pa.Table.from_pydict(
        {
            "ts": [when + dt.timedelta(seconds=i) for i in range(n)],
            "request_id": [r[0] for r in rows],
            "endpoint": ["e"] * n,
            "model_version": ["2"] * n,
            "arm": ["blue"] * n,
            "inputs": [r[1] if isinstance(r[1], str) else to_json(r[1]) for r in rows],
            "features": [to_json(r[2]) for r in rows],
            "output": [r[3] if isinstance(r[3], str) else to_json(r[3]) for r in rows],
            "latency_ms": [1.5] * n,
            "shadow": [r[4] for r in rows],
        },
        schema=predictions_schema(),
    )


def test_bad_rows_are_skipped_and_counted_shadows_left_out() -> None:
    table = _log_table(
        [
            ("a", [{"x": 1.0, "c": "u"}], {"f": [10], "x": [9]}, {"predict": [1]}, False),
            ("bad-json", "{not json", None, {"predict": [0]}, False),
            ("bad-out", [{"x": 2.0}], None, "[1, 2", False),
            ("bad-rows", [{"x": 2.0}, {"x": 3.0}], None, {"predict": [0]}, False),
            ("shadow", [{"x": 4.0, "c": "v"}], None, {"predict": [0]}, True),
            ("b", {"x": [5.0, 6.0], "c": ["w", None]}, None, {"predict": [0, 1]}, False),
        ]
    )
    flat = flatten_predictions(table)
    assert skipped_requests(flat) == 3
    got = flat.to_pylist()
    assert [(r["request_id"], r["row"]) for r in got] == [("a", 0), ("b", 0), ("b", 1)]
    assert [r["x"] for r in got] == [1.0, 5.0, 6.0] and [r["c"] for r in got] == ["u", "w", None]
    # a feature named as an input is prefixed; others keep their names
    assert got[0]["f"] == 10 and got[0]["feature.x"] == 9 and got[1]["f"] is None
    assert "shadow" not in flat.column_names and "proba_0" not in flat.column_names
    with_shadow = flatten_predictions(table, include_shadow=True).to_pylist()
    assert [r["request_id"] for r in with_shadow] == ["a", "shadow", "b", "b"]
    assert with_shadow[1]["shadow"] is True and with_shadow[1]["x"] == 4.0


def test_multi_output_predictions_are_json_text_and_columns_may_be_missing() -> None:
    table = _log_table(
        [("m", [[1, 2], [3, 4]], None, {"predict": [[0.5, 1.5], [2.5, 3.5]]}, False)]
    )
    flat = flatten_predictions(table.drop_columns(["features", "arm", "shadow"]))
    got = flat.to_pylist()
    assert [(r["input_0"], r["input_1"]) for r in got] == [(1, 2), (3, 4)]
    assert [r["prediction"] for r in got] == ["[0.5,1.5]", "[2.5,3.5]"]
    assert got[0]["arm"] is None and skipped_requests(flat) == 0
    with pytest.raises(Invalid, match="output"):
        flatten_predictions(table.drop_columns(["output"]))


def test_shadow_rows_of_a_window_are_excluded_by_default(tmp_path: Any) -> None:
    events = EventLog(open_stores())
    table = _log_table(
        [
            ("p", [{"x": 1.0}], None, {"predict": [1]}, False),
            ("p", [{"x": 1.0}], None, {"predict": [0]}, True),
        ]
    ).set_column(2, "endpoint", pa.array(["iris", "iris"]))
    events.append("predictions", table)
    events.append("predictions", table.slice(0, 1))
    assert read_window("iris", events=events)["prediction"].to_pylist() == [1, 1]
    shadows = read_window("iris", events=events, include_shadow=True)
    assert shadows["shadow"].to_pylist() == [False, False, True]  # by ts, then append order
    assert read_window("iris", events=events, model_version="9").num_rows == 0
    assert read_window("other", events=events).num_rows == 0


def test_a_segment_result_is_computed_once_and_a_cut_segment_not_stored(tmp_path: Any) -> None:
    events = EventLog(open_stores())
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    table = _log_table([("p", [{"x": float(i)}], None, {"predict": [i]}, False) for i in range(4)])
    events.append("predictions", table.set_column(2, "endpoint", pa.array(["iris"] * 4)))
    cache = SegmentCache(tmp_path / "cache")
    calls: list[int] = []

    def count(t: pa.Table) -> int:
        calls.append(t.num_rows)
        return t.num_rows

    for _ in range(2):
        (part,) = window_batches("iris", when, when + dt.timedelta(hours=1), events=events)
        assert cache.get_or_compute(part, "rows", count) == 4
    assert calls == [4]  # the second pass read nothing
    (cut,) = window_batches("iris", when + dt.timedelta(seconds=2), events=events)
    assert not cut.whole and cut.key != part.key
    assert cache.get_or_compute(cut, "rows", count) == 2 and calls == [4, 2]
    assert cache.get(cut.key, "rows") is None
    with pytest.raises(Invalid, match="JSON-able"):
        cache.put(part.key, "bad", object())


def test_window_ends_read_as_datetimes_seconds_and_durations() -> None:
    now = dt.datetime.now(dt.UTC)
    day = to_datetime("24h")
    assert day is not None and abs((now - day).total_seconds() - 86400) < 60
    assert to_datetime(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert to_datetime("2026-01-01T00:00:00") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for bad in ("yesterday", [1], True):
        with pytest.raises(Invalid, match="duration"):
            to_datetime(bad)
    with pytest.raises(Invalid, match="empty"):
        list(window_batches("iris", "1h", "2h", events=EventLog(open_stores())))
