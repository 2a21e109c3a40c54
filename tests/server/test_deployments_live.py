"""GET /api/v1/deployments/{name}/live: an endpoint's last minutes from the prediction
log, per minute and model version, computed from rows written with known latencies,
errors and shadow answers; a window that is not 1 to 1440 whole minutes is a 422
naming it, an endpoint the project does not have a 404."""

from __future__ import annotations

import datetime as dt
import json
import time

import httpx
import numpy as np
import pyarrow as pa
import pytest

import loopstack as ls


def _prediction(at: float, rid: str, version: str, predict: list, latency: float, **kw) -> dict:
    return {
        "ts": dt.datetime.fromtimestamp(at, tz=dt.UTC),
        "request_id": rid,
        "endpoint": kw.get("endpoint", "churn-api"),
        "model_version": version,
        "arm": kw.get("arm", "blue"),
        "inputs": json.dumps([{"x": i} for i in range(len(predict))]),
        "features": None,
        "output": json.dumps({"predict": predict}),
        "latency_ms": latency,
        "shadow": kw.get("shadow", False),
    }


def _error(at: float, rid: str, version: str, status: int) -> dict:
    return {
        "ts": dt.datetime.fromtimestamp(at, tz=dt.UTC),
        "request_id": rid,
        "endpoint": "churn-api",
        "model_version": version,
        "arm": "blue",
        "status": status,
        "error": "the model failed on this input",
        "latency_ms": 3.0,
        "shadow": False,
    }


@pytest.fixture
def logged() -> tuple[float, float]:
    """Two minutes of churn-api's traffic, ten and five minutes ago: version 1 answers
    (latencies 10, 20, 30, 40 then 100 ms) and fails once; version 2 shadows two
    requests (three model rows, two of them answered as version 1 did)."""
    from loopstack.serving._prediction_log import errors_schema, predictions_schema
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog

    ls.get_registry().create_model_version("churn", source="file:///m1", files={"m": "a" * 64})
    ls.deployments().create("churn-api", "churn/1")
    now = time.time()
    a = (int(now) // 60 - 10) * 60 + 5.0  # early in the minute ten minutes ago
    b = a + 5 * 60
    rows = [
        _prediction(a, "r1", "1", [0, 1], 10.0),
        _prediction(a + 1, "r2", "1", [1], 20.0),
        _prediction(a + 2, "r3", "1", [1], 30.0),
        _prediction(a + 3, "r4", "1", [0], 40.0),
        _prediction(a + 1, "r1", "2", [0, 0], 7.0, arm="shadow", shadow=True),
        _prediction(a + 2, "r2", "2", [1], 9.0, arm="shadow", shadow=True),
        _prediction(b, "r6", "1", [1], 100.0),
        _prediction(a, "o1", "1", [1], 999.0, endpoint="other"),  # not this endpoint's
    ]
    events = EventLog(open_stores())
    events.append("predictions", pa.Table.from_pylist(rows, schema=predictions_schema()))
    errors = [_error(a + 4, "r5", "1", 422)]
    events.append("prediction_errors", pa.Table.from_pylist(errors, schema=errors_schema()))
    return a, b


def _bucket(doc: dict, at: float) -> int:
    starts = doc["buckets"]
    return max(i for i, start in enumerate(starts) if start <= at * 1000)


def test_the_live_view_counts_each_minute_of_each_version(
    http: httpx.Client, logged: tuple[float, float]
) -> None:
    a, b = logged
    got = http.get("/api/v1/deployments/churn-api/live", params={"minutes": 30})
    assert got.status_code == 200, got.text
    doc = got.json()
    assert doc["minutes"] == 30 and doc["bucket_s"] == 60 and len(doc["buckets"]) == 30
    assert doc["until"] - doc["since"] == 30 * 60_000 and doc["until"] > time.time() * 1000
    primary, shadow = doc["series"]
    ia, ib = _bucket(doc, a), _bucket(doc, b)
    assert ib == ia + 5

    assert (primary["model_version"], primary["shadow"], primary["arms"]) == ("1", False, ["blue"])
    assert primary["requests"][ia] == 5 and primary["errors"][ia] == 1  # 4 answered, 1 failed
    assert primary["requests"][ib] == 1 and primary["errors"][ib] == 0
    assert sum(primary["requests"]) == 6 and sum(primary["errors"]) == 1
    assert primary["p50_ms"][ia] == pytest.approx(25.0)
    assert primary["p99_ms"][ia] == pytest.approx(float(np.percentile([10, 20, 30, 40], 99)))
    assert primary["p50_ms"][ib] == pytest.approx(100.0)
    assert primary["p50_ms"][ia + 1] is None and primary["requests"][ia + 1] == 0
    assert primary["agreement"] == [None] * 30
    totals = primary["totals"]
    assert (totals["requests"], totals["errors"]) == (6, 1)
    assert totals["error_rate"] == pytest.approx(1 / 6)
    assert totals["p50_ms"] == pytest.approx(30.0)  # of 10, 20, 30, 40, 100

    assert (shadow["model_version"], shadow["shadow"], shadow["arms"]) == ("2", True, ["shadow"])
    assert shadow["requests"][ia] == 2 and shadow["errors"][ia] == 0
    # r1: rows [0, 1] vs [0, 0] (one of two agrees); r2: [1] vs [1]
    assert shadow["compared_rows"][ia] == 3
    assert shadow["agreement"][ia] == pytest.approx(2 / 3)
    assert shadow["totals"]["agreement"] == pytest.approx(2 / 3)
    assert shadow["p50_ms"][ia] == pytest.approx(8.0)

    # a window too short for the rows: none of them
    recent = http.get("/api/v1/deployments/churn-api/live", params={"minutes": 2}).json()
    assert recent["series"] == [] and len(recent["buckets"]) == 2
    # sixty minutes by default
    assert len(http.get("/api/v1/deployments/churn-api/live").json()["buckets"]) == 60


@pytest.mark.parametrize("minutes", ["0", "1441", "-5", "abc", "1.5"])
def test_a_window_that_is_not_1_to_1440_minutes_is_refused(
    http: httpx.Client, logged: tuple[float, float], minutes: str
) -> None:
    got = http.get("/api/v1/deployments/churn-api/live", params={"minutes": minutes})
    assert got.status_code == 422, got.text
    assert "minutes" in got.json()["message"]
    if minutes.lstrip("-").isdigit():
        assert "a whole number from 1 to 1440" in got.json()["message"]


def test_the_live_view_of_an_endpoint_the_project_does_not_have_is_a_404(
    http: httpx.Client,
) -> None:
    got = http.get("/api/v1/deployments/nowhere/live")
    assert got.status_code == 404 and "nowhere" in got.json()["message"]
