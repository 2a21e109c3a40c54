"""Triggers on what monitoring sees: drift above, performance and business KPIs below a
threshold over a window, and each new firing of an alert rule. Each fires once per
window (or alert event) and not again."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import loopstack as ls
from loopstack.loop import Controller, Trigger, TriggerStore, loop_status
from loopstack.monitoring import AlertRule, AlertStore, log_kpi, log_labels
from loopstack.serving._prediction_log import predictions_schema
from loopstack.store import open_stores
from tests.loop._launch import FakeObserve, Launcher, pipeline_file

HOUR = 3600.0


@pytest.fixture
def entry(tmp_path: Path) -> str:
    return pipeline_file(tmp_path)


def test_drift_above_fires_once_per_window(use_db: str, entry: str) -> None:
    spec = {"endpoint": "fraud", "above": 0.3, "window": "1h"}
    TriggerStore(open_stores()).add(Trigger("drifted", "drift", entry, spec=spec))
    seen = FakeObserve({"drift_share": 0.1})
    launch = Launcher()
    c = Controller(open_stores(), launch=launch, observe=seen)
    t0 = (time.time() // HOUR + 1) * HOUR  # a window boundary
    c.step(t0 + 60)
    assert launch.calls == []  # below the threshold
    seen.metrics["drift_share"] = 0.42
    c.step(t0 + 120)
    asked = len(seen.asked)
    c.step(t0 + 1800)  # the same window: once, and not even observed again
    assert len(launch.calls) == 1 and len(seen.asked) == asked
    c.step(t0 + HOUR + 5)  # the next window, still drifted: again
    assert len(launch.calls) == 2
    assert seen.asked[-1] == ("fraud", "1h", t0 + HOUR)
    reasons = [f.reason for f in loop_status(open_stores())]
    assert reasons == ["drift_share 0.42 > 0.30 on fraud over 1h"] * 2


def test_performance_below_from_real_logged_predictions_and_labels(use_db: str, entry: str) -> None:
    from loopstack.store.events import EventLog

    events = EventLog(open_stores())
    end = (time.time() // HOUR) * HOUR  # the window [end - 1h, end) holds every prediction
    n = 40
    when = dt.datetime.fromtimestamp(end - 1800, dt.UTC)
    ids = [f"r{i}" for i in range(n)]
    table = pa.Table.from_pydict(
        {
            "ts": [when + dt.timedelta(seconds=i) for i in range(n)],
            "request_id": ids,
            "endpoint": ["fraud"] * n,
            "model_version": ["1"] * n,
            "arm": [None] * n,
            "inputs": [json.dumps([{"x": float(i)}]) for i in range(n)],
            "features": [None] * n,
            "output": [json.dumps({"predict": [i % 4 == 0]}) for i in range(n)],
            "latency_ms": [1.0] * n,
            "shadow": [False] * n,
        },
        schema=predictions_schema(),
    )
    events.append("predictions", table)
    # a quarter predicted True, every label False: accuracy 0.75
    log_labels(pd.DataFrame({"request_id": ids, "label": [False] * n}), events=events)
    spec = {"endpoint": "fraud", "metric": "accuracy", "below": 0.8, "window": 3600}
    TriggerStore(open_stores()).add(Trigger("worse", "performance", entry, spec=spec))
    strict = {"endpoint": "fraud", "metric": "accuracy", "below": 0.5, "window": 3600}
    TriggerStore(open_stores()).add(Trigger("fine", "performance", entry, spec=strict))
    launch = Launcher()
    c = Controller(open_stores(), launch=launch)
    c.step(end + 1)
    c.step(end + 2)
    assert len(launch.calls) == 1
    (view,) = loop_status(open_stores())
    assert view.trigger == "worse" and view.status == "done"
    assert view.reason == "accuracy 0.75 < 0.80 on fraud over 3600"


def test_drift_against_a_dataset_reference_from_real_predictions(use_db: str, entry: str) -> None:
    from loopstack.store.events import EventLog

    ls.register_dataset("fraud-train", pd.DataFrame({"x": [1000.0 + i for i in range(200)]}))
    end = (time.time() // HOUR) * HOUR  # the window [end - 1h, end) holds every prediction
    n = 60
    when = dt.datetime.fromtimestamp(end - 1800, dt.UTC)
    EventLog(open_stores()).append(
        "predictions",
        pa.Table.from_pydict(
            {
                "ts": [when + dt.timedelta(seconds=i) for i in range(n)],
                "request_id": [f"q{i}" for i in range(n)],
                "endpoint": ["fraud"] * n,
                "model_version": ["1"] * n,
                "arm": [None] * n,
                "inputs": [json.dumps([{"x": float(i)}]) for i in range(n)],
                "features": [None] * n,
                "output": [json.dumps({"predict": [0]})] * n,
                "latency_ms": [1.0] * n,
                "shadow": [False] * n,
            },
            schema=predictions_schema(),
        ),
    )
    spec = {"endpoint": "fraud", "above": 0.5, "window": "1h", "reference": "fraud-train/1"}
    TriggerStore(open_stores()).add(Trigger("moved", "drift", entry, spec=spec))
    launch = Launcher()
    c = Controller(open_stores(), launch=launch)
    c.step(end + 1)
    assert len(launch.calls) == 1
    assert loop_status(open_stores())[0].reason == "drift_share 1.00 > 0.50 on fraud over 1h"


def test_kpi_below_fires_once_per_window(use_db: str, entry: str) -> None:
    from loopstack.store.events import EventLog

    events = EventLog(open_stores())
    now = time.time()
    end = (now // HOUR + 1) * HOUR
    for value in (9.0, 11.0):
        log_kpi("revenue", value, ts=end - 100, endpoint="fraud", events=events)
    log_kpi("revenue", 1.0, ts=end - 50, endpoint="other", events=events)
    spec = {"kpi": "revenue", "below": 12.0, "window": "1h", "endpoint": "fraud"}
    TriggerStore(open_stores()).add(Trigger("revenue-low", "kpi", entry, spec=spec))
    high = {"kpi": "revenue", "below": 5.0, "window": "1h", "endpoint": "fraud"}
    TriggerStore(open_stores()).add(Trigger("revenue-ok", "kpi", entry, spec=high))
    launch = Launcher()
    c = Controller(open_stores(), launch=launch)
    c.step(end + 1)
    c.step(end + 30)
    assert len(launch.calls) == 1
    (view,) = loop_status(open_stores())
    assert view.reason == "kpi revenue mean 10.00 < 12.00 on fraud over 1h (2 values)"
    c.step(end + HOUR + 1)  # the next window has no values: nothing
    assert len(launch.calls) == 1


def test_alert_fires_on_each_new_firing_of_its_rule_only(use_db: str, entry: str) -> None:
    alerts = AlertStore(open_stores())
    alerts.save_rule(AlertRule("p99", "latency_p99_ms", ">", 250.0))
    alerts.save_rule(AlertRule("errors", "error_rate", ">", 0.1))
    t = time.time()
    alerts.evaluate({"latency_p99_ms": 300.0}, now=t)  # fired before the trigger existed
    alerts.evaluate({"latency_p99_ms": 100.0}, now=t + 1)  # resolved
    TriggerStore(open_stores()).add(Trigger("slow", "alert", entry, spec={"rule": "p99"}))
    launch = Launcher()
    c = Controller(open_stores(), launch=launch)
    c.step()
    assert launch.calls == []
    alerts.evaluate({"latency_p99_ms": 400.0, "error_rate": 0.5}, now=t + 2)  # fires both
    c.step()
    c.step()
    assert len(launch.calls) == 1
    alerts.evaluate({"latency_p99_ms": 100.0}, now=t + 3)
    alerts.evaluate({"latency_p99_ms": 500.0}, now=t + 4)  # a new incident
    c.step()
    assert len(launch.calls) == 2
    reasons = [f.reason for f in loop_status(open_stores())]
    assert reasons[0].startswith("alert 'p99' fired: latency_p99_ms 500.00 > 250.00 at ")
    assert reasons[1].startswith("alert 'p99' fired: latency_p99_ms 400.00 > 250.00 at ")


def test_a_trigger_whose_check_fails_does_not_stop_the_others(use_db: str, entry: str) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the event log is unreachable")

    store = TriggerStore(open_stores())
    store.add(Trigger("drifted", "drift", entry, spec={"endpoint": "fraud", "above": 0.3}))
    store.add(Trigger("by-hand", "manual", entry))
    store.fire_manual("by-hand")
    launch = Launcher()
    report = Controller(open_stores(), launch=launch, observe=broken).step()
    assert len(launch.calls) == 1
    kinds = [(e.kind, e.trigger) for e in report.events]
    assert ("error", "drifted") in kinds and ("done", "by-hand") in kinds
