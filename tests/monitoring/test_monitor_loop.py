"""The monitoring loop end to end: a real model served over HTTP with a prediction log,
labels arriving later, and ``monitor_once`` evaluating the alert rules on each window.
A clean window fires nothing; a window whose inputs drifted fires the drift rule, and
one whose labels changed (concept drift: the inputs did not move) fires the accuracy rule
through the delayed-label path. The reference profile is kept with the model version
and each segment's profile is computed once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app as cli_app
from loopstack.config import settings
from loopstack.monitoring import AlertRule, AlertStore, log_labels
from loopstack.monitoring._monitor import REFERENCE_TAG, monitor_once, observe
from loopstack.registry import registry
from loopstack.server import create_serving_app
from loopstack.serving import EndpointSpec, PredictionLog, ServingRuntime
from loopstack.store import open_stores
from loopstack.store.events import EventLog
from tests.conftest import ThreadedServer

FEATURES = ["f0", "f1", "f2", "f3"]
W = np.array([1.5, -1.0, 0.8, 0.0])


def _data(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, 0] += shift
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ W)))).astype(int)
    return pd.DataFrame(X, columns=FEATURES).assign(y=y)


@dataclass
class Live:
    url: str
    plog: PredictionLog
    events: EventLog


@pytest.fixture
def live() -> Iterator[Live]:
    rng = np.random.default_rng(7)
    train = _data(4000, rng)
    dv = ls.register_dataset("churn-train", train)
    with ls.start_run(experiment="monitor-loop") as run:
        run.log_input(dv, context="training")
        model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["y"])
        run.log_model(model, name="churn", artifact_path="m", sample_input=train[FEATURES].head(3))
    runtime = ServingRuntime([EndpointSpec("churn", "models:/churn/1")])
    runtime.load_all()
    events = EventLog(open_stores())
    plog = PredictionLog(events, flush_interval_s=60)
    server_app = create_serving_app(runtime, start=False, prediction_log=plog)
    try:
        with ThreadedServer(server_app) as server:
            yield Live(server.url, plog, events)
    finally:
        plog.close()


def _send(live: Live, frame: pd.DataFrame, prefix: str) -> list[str]:
    ids = []
    with httpx.Client(timeout=30) as client:
        plain = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None)
        for i, row in enumerate(plain.to_dict("records")):
            rid = f"{prefix}-{i}"
            got = client.post(
                f"{live.url}/endpoints/churn/predict",
                json={"records": [row]},
                headers={"X-Request-ID": rid},
            )
            assert got.status_code == 200, got.text
            ids.append(rid)
    assert live.plog.flush(30)
    return ids


def _phase(live: Live, frame: pd.DataFrame, prefix: str, labels: Any) -> float:
    start = time.time()
    ids = _send(live, frame, prefix)
    log_labels(pd.DataFrame({"request_id": ids, "label": labels}), events=live.events)
    time.sleep(0.05)
    return start


def test_drift_and_concept_drift_fire_their_rules_and_a_clean_window_nothing(live: Live) -> None:
    rng = np.random.default_rng(11)
    stores = open_stores()
    store = AlertStore(stores)
    store.save_rule(AlertRule("inputs-drift", "drift_share", ">=", 0.25, category="model_quality"))
    store.save_rule(AlertRule("accuracy-low", "accuracy", "<", 0.6, category="model_quality"))
    store.save_rule(AlertRule("slow", "latency_p99_ms", ">", 60_000.0))

    clean = _data(300, rng)
    t0 = _phase(live, clean, "clean", clean["y"].tolist())
    t1 = time.time()
    ((obs, events),) = monitor_once(store, ["churn"], window=t1 - t0, until=t1)
    m = obs.metrics()
    assert obs.model_version == "churn/1" and obs.requests == 300 and obs.rows == 300
    assert m["drift_share"] == 0.0 and m["accuracy"] > 0.7, m
    assert m["label_coverage"] == 1.0 and 0.6 < m["estimated_accuracy"] < 0.95, m
    assert abs(m["estimated_accuracy"] - m["accuracy"]) < 0.1, m
    assert "prediction_drift" in m and m["latency_p99_ms"] > 0
    assert [e for e in events if e.kind == "fired"] == []
    tag = registry().get_model_version("churn", 1).tags[REFERENCE_TAG]
    assert len(tag) == 64  # the reference profile, kept with the version

    shifted = _data(300, rng, shift=1.5)
    t2 = _phase(live, shifted, "shifted", shifted["y"].tolist())
    t3 = time.time()
    ((obs, events),) = monitor_once(store, ["churn"], window=t3 - t2, until=t3)
    fired = {e.rule.name for e in events if e.kind == "fired"}
    assert fired == {"inputs-drift"}, (fired, obs.metrics())
    assert obs.drift is not None and obs.drift["f0"].drifted and not obs.drift["f3"].drifted

    concept = _data(300, rng)
    flipped = (1 - concept["y"]).tolist()  # same inputs, the world changed its answers
    t4 = _phase(live, concept, "concept", flipped)
    t5 = time.time()
    ((obs, events),) = monitor_once(store, ["churn"], window=t5 - t4, until=t5)
    m = obs.metrics()
    fired = {e.rule.name for e in events if e.kind == "fired"}
    assert "accuracy-low" in fired and m["accuracy"] < 0.4, m
    assert m["drift_share"] == 0.0  # the inputs did not move: only labels show it
    assert m["estimated_accuracy"] > 0.6  # the estimate cannot see concept drift

    # the CLI's one evaluation over everything: the rules' last values are listed
    result = CliRunner().invoke(cli_app, ["monitor", "run", "churn", "--once", "--window", "1h"])
    assert result.exit_code == 0, result.output
    assert "churn" in result.output


def test_a_window_profile_is_built_once_per_segment(live: Live, tmp_path: Any) -> None:
    rng = np.random.default_rng(3)
    frame = _data(120, rng)
    t0 = _phase(live, frame, "a", frame["y"].tolist())
    first = observe("churn", time.time() - t0 + 5)
    again = observe("churn", time.time() - t0 + 5)
    assert first.drift is not None and again.drift is not None
    assert [c.statistic for c in first.drift.columns] == [c.statistic for c in again.drift.columns]
    assert first.quality is not None and first.quality.issues == []
    cache = settings().home / "cache" / "monitoring"
    assert any(cache.rglob("*.json"))


def test_the_report_shows_performance_estimate_quality_and_kpis(live: Live, tmp_path: Any) -> None:
    from loopstack.monitoring import build_report, log_kpi

    rng = np.random.default_rng(5)
    frame = _data(200, rng)
    _phase(live, frame, "r", frame["y"].tolist())
    log_kpi("approval_rate", 0.42, endpoint="churn")
    report = build_report("churn", "1h", model_version="churn/1")
    metrics = {r["metric"] for r in report.performance}
    assert {"accuracy", "roc_auc", "log_loss"} <= metrics, metrics
    acc = [r for r in report.performance if r["metric"] == "accuracy"]
    assert sum(r["n"] for r in acc) == 200
    est = [r for r in report.estimated if r["metric"] == "accuracy"]
    assert est and all(r["lower"] <= r["estimate"] <= r["upper"] for r in est)
    assert all(r["realised"] is not None for r in est)
    assert {r["column"] for r in report.quality} >= set(FEATURES)
    assert [k["value"] for k in report.kpis] == [0.42]
    html = report.to_html()
    assert "approval_rate" in html and "accuracy" in html
    data = report.to_dict()
    assert data["performance"] and data["estimated"] and data["quality"]


def test_monitor_run_reads_a_labels_table_each_time(live: Live, tmp_path: Any) -> None:
    rng = np.random.default_rng(9)
    frame = _data(60, rng)
    ids = _send(live, frame, "lt")
    path = tmp_path / "labels.parquet"
    stamp = pd.Timestamp.now(tz="UTC")
    pd.DataFrame({"request_id": ids, "label": frame["y"], "ts": stamp}).to_parquet(path)
    AlertStore(open_stores()).save_rule(AlertRule("acc", "accuracy", "<", 0.01))
    args = ["monitor", "run", "churn", "--once", "--labels", str(path), "--window", "1h"]
    first = CliRunner().invoke(cli_app, args)
    assert first.exit_code == 0, first.output
    assert "labels: 60 new row(s)" in first.output
    again = CliRunner().invoke(cli_app, args)
    assert "labels: 0 new row(s)" in again.output  # the watermark: nothing twice
    ((rule, state),) = AlertStore(open_stores()).rule_states()
    assert rule.name == "acc" and state.last_value is not None and state.last_value > 0.5


def test_values_outside_the_reference_range_are_a_quality_issue(live: Live) -> None:
    rng = np.random.default_rng(2)
    frame = _data(50, rng)
    frame["f3"] = 40.0 + rng.random(50)  # far above anything the model was trained on
    t0 = time.time()
    _send(live, frame, "range")
    obs = observe("churn", time.time() - t0 + 1)
    assert obs.quality is not None
    issues = [(i["column"], i["kind"]) for i in obs.quality.issues]
    assert issues == [("f3", "out_of_range")], obs.quality.issues
    assert obs.metrics()["out_of_range_max"] == 1.0
