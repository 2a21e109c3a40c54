"""The closed loop end to end on real data: scikit-learn's breast cancer and digits sets.

v1 is trained on the original measurements, registered with its training dataset,
made ``production`` and served over HTTP from a stored deployment with the prediction
log on. Then the measuring device changes (the cancer lab's reports lengths 1.5 times
and areas 2.25 times what v1 saw; the digit scanner's top three rows read 8 levels
brighter), and the labels of the live requests come back through
``POST /endpoints/{name}/feedback``, so v1 really degrades. A drift trigger on a real
retraining pipeline (a file this test writes) is evaluated by the ``Controller``: it
fires on the measured drift, the pipeline retrains on the original rows plus the
labelled shifted traffic read back from the prediction log, registers v2, gates it
against the champion on a shifted evaluation set and starts a canary rollout that a
second user approves; the controller's steps carry it to promotion. A second test
stops a challenger that does not beat the champion at its gates.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopstack as ls
from loopstack.errors import GateFailed
from loopstack.loop import (
    Controller,
    Rollouts,
    Trigger,
    TriggerStore,
    gate_results,
    loop_status,
    require_gates_passed,
)
from loopstack.monitoring import observe
from loopstack.registry import SqlRegistry
from loopstack.server import create_serving_app
from loopstack.serving import DeploymentSource, PredictionLog, ServingRuntime, SqlDeployments
from loopstack.store import Stores, open_stores
from loopstack.store.events import EventLog
from tests.conftest import ThreadedServer
from tests.serving.conftest import eventually

LABEL = "target"
#: the new device: lengths 1.5 times larger (so areas 2.25 times)
SCALED = {
    "mean_radius": 1.5,
    "mean_perimeter": 1.5,
    "mean_texture": 1.5,
    "worst_radius": 1.5,
    "worst_perimeter": 1.5,
    "worst_texture": 1.5,
    "mean_area": 2.25,
    "worst_area": 2.25,
}

PIPELINE = '''
"""Retrain on the original rows plus the labelled traffic of the endpoint, gate the
new version against the champion, and start its canary rollout."""

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopstack as ls
from loopstack.loop import (
    Gates, MetricThreshold, RolloutPlan, Rollouts, evaluate_gates, record_gates,
    require_gates_passed,
)
from loopstack.monitoring import join_labels, read_window
from loopstack.serving import PredictionLog
from loopstack.store import open_stores
from loopstack.store.events import EventLog


@ls.step(cache=False)  # it reads the live log: never from the cache
def labelled_traffic(endpoint: str, label: str) -> pd.DataFrame:
    """The endpoint's logged inputs joined with the labels that came back."""
    stores = open_stores()
    flat = read_window(endpoint, events=EventLog(stores)).to_pandas()
    if flat.empty:
        return pd.DataFrame()
    plog = PredictionLog(EventLog(stores))
    try:
        feedback = plog.read_feedback().to_pandas()
    finally:
        plog.close()
    rows = join_labels(flat, feedback)
    rows = rows[rows["label"].notna()]
    features = [c for c in flat.columns if c not in (
        "ts", "request_id", "row", "endpoint", "model_version", "arm", "latency_ms",
        "prediction") and not c.startswith(("proba_", "_"))]
    out = rows[features].astype(float).assign(**{label: rows["label"].astype(int)})
    return out.reset_index(drop=True)


@ls.step
def retrain(traffic: pd.DataFrame, base: str, model: str, label: str, c: float) -> int:
    """v(n+1): fit on the base training set plus the labelled traffic; registered."""
    original = ls.get_dataset(base).to_pandas()
    rows = original
    if len(traffic):
        rows = pd.concat([original, traffic[original.columns]], ignore_index=True)
    train = ls.register_dataset(f"{base}-retrain", rows)
    with ls.start_run(experiment="retraining") as run:
        run.log_input(train, context="training")
        fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        fitted.fit(rows.drop(columns=label), rows[label])
        mv = run.log_model(fitted, name=model, artifact_path="model",
                           sample_input=rows.drop(columns=label).head(3))
    return int(mv.version)


@ls.step
def gate(version: int, model: str, evaluation: str, label: str, margin: float) -> dict:
    """The challenger against the champion on the shifted evaluation set, recorded."""
    gates = Gates(
        primary=MetricThreshold("accuracy", min_improvement=margin),
        guardrails=[MetricThreshold("f1", min_value=0.8)],
        n_bootstrap=1000,
        significance=0.05,
        require_validation=False,
    )
    report = evaluate_gates(
        gates, f"models:/{model}/{version}", f"models:/{model}@production",
        data=ls.get_dataset(evaluation).to_pandas(), label=label,
    )
    record_gates(report, model, version)
    require_gates_passed(model, version)
    return {"version": version, "passed": report.passed}


@ls.step
def roll_out(gated: dict, endpoint: str, model: str, plan: dict | None = None) -> int:
    """The trigger's rollout plan (a canary watched by guardrails) started for the gated
    version; it waits for a human's approval."""
    started = Rollouts(open_stores(), actor="alice").start(
        endpoint, model, gated["version"], RolloutPlan.from_dict(plan or {}), evidence=gated
    )
    return int(started.rollout_id)


@ls.pipeline(name="retrain-on-traffic")
def retraining(endpoint: str = "", model: str = "", base: str = "", evaluation: str = "",
               label: str = "target", plan: dict | None = None, c: float = 1.0,
               margin: float = 0.1):
    traffic = labelled_traffic(endpoint=endpoint, label=label)
    version = retrain(traffic, base=base, model=model, label=label, c=c)
    gated = gate(version, model=model, evaluation=evaluation, label=label, margin=margin)
    roll_out(gated, endpoint=endpoint, model=model, plan=plan)
'''


def _bigger(frame: pd.DataFrame) -> pd.DataFrame:
    """Breast cancer rows as the new device measures them: lengths 1.5 times larger
    (so areas 2.25 times)."""
    out = frame.copy()
    for column, factor in SCALED.items():
        out[column] = out[column] * factor
    return out


def _brighter(frame: pd.DataFrame) -> pd.DataFrame:
    """Digits as the new scanner sees them: the top three rows of its sensor read 8
    levels brighter."""
    out = frame.copy()
    band = [c for c in out.columns if c.startswith(("pixel_0_", "pixel_1_", "pixel_2_"))]
    out[band] = out[band] + 8.0
    return out


@dataclass(frozen=True)
class Case:
    """A bundled dataset, how the new device shifts it, and how it is split: v1's
    training rows (original), then live traffic, gate evaluation and held-out test rows
    (all three shifted)."""

    name: str
    load: Callable[[], pd.DataFrame]
    shift: Callable[[pd.DataFrame], pd.DataFrame]
    sizes: tuple[int, int, int]  # train, live, evaluation; the rest is the test set


def _cancer_frame() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


CANCER = Case("cancer", _cancer_frame, _bigger, (230, 200, 70))
DIGITS = Case("digits", lambda: load_digits(as_frame=True).frame, _brighter, (600, 500, 300))


@dataclass
class Real:
    """One case's registered v1 and its data split."""

    case: Case
    stores: Stores
    train: pd.DataFrame
    live: pd.DataFrame
    evaluation: pd.DataFrame
    test: pd.DataFrame

    @property
    def endpoint(self) -> str:
        return f"{self.case.name}-api"

    @property
    def model(self) -> str:
        return self.case.name


def _v1(case: Case) -> Real:
    """v1 fit on the original rows, registered with its training set, ``production``,
    deployed on ``<name>-api``; the shifted evaluation set registered for the gates."""
    frame = case.load()
    order = np.random.default_rng(0).permutation(len(frame))
    n_train, n_live, n_eval = case.sizes
    cuts = (0, n_train, n_train + n_live, n_train + n_live + n_eval, len(frame))
    train, live, evaluation, test = (
        frame.iloc[order[a:b]].reset_index(drop=True) for a, b in itertools.pairwise(cuts)
    )
    live, evaluation, test = (case.shift(f) for f in (live, evaluation, test))
    data = ls.register_dataset(f"{case.name}-train", train)
    ls.register_dataset(f"{case.name}-eval-shifted", evaluation)
    features = train.drop(columns=LABEL)
    with ls.start_run(experiment=case.name) as run:
        run.log_input(data, context="training")
        v1 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        v1.fit(features, train[LABEL])
        mv = run.log_model(v1, name=case.name, artifact_path="model", sample_input=features.head(3))
    assert mv.version == 1
    stores = open_stores()
    SqlRegistry(stores, actor="root").set_alias(case.name, "production", 1, override=True)
    SqlDeployments(stores, actor="root").create(f"{case.name}-api", f"{case.name}@production")
    return Real(case, stores, train, live, evaluation, test)


@dataclass
class Traffic:
    """Shifted requests of 10 rows to the endpoint, each followed by its labels."""

    url: str
    endpoint: str
    rows: pd.DataFrame
    answers: Counter[tuple[int, str | None]] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self, client: httpx.Client, chunk: pd.DataFrame) -> None:
        rid = uuid.uuid4().hex
        got = client.post(
            f"{self.url}/endpoints/{self.endpoint}/predict",
            json={"records": chunk.drop(columns=LABEL).to_dict("records")},
            headers={"X-Request-ID": rid, "X-Routing-Key": rid},
        )
        version = got.json().get("model_version") if got.status_code == 200 else None
        self.answers[(got.status_code, version)] += 1
        if got.status_code != 200:
            return
        labels = [int(v) for v in chunk[LABEL]]
        said = got.json()["predictions"]
        self.seen[str(version)] += len(labels)
        self.correct[str(version)] += sum(int(a) == b for a, b in zip(said, labels, strict=True))
        fed = client.post(
            f"{self.url}/endpoints/{self.endpoint}/feedback",
            json={"request_id": rid, "label": labels},
        )
        assert fed.status_code == 200, fed.text

    def send_all(self) -> None:
        """Every row once, in requests of 10."""
        with httpx.Client(timeout=30) as client:
            for start in range(0, len(self.rows), 10):
                self.send(client, self.rows.iloc[start : start + 10])

    def keep_sending(self) -> None:
        """Random requests of 10 rows until stopped."""
        rng = np.random.default_rng(1)
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                picked = rng.choice(len(self.rows), 10, replace=False)
                self.send(client, self.rows.iloc[picked])
                time.sleep(0.02)


@pytest.fixture(params=[CANCER, DIGITS], ids=lambda c: c.name)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Real, str]]:
    """v1 behind the real serving app over the stored deployment (refreshed every
    0.1 s), its prediction log flushed every 0.2 s."""
    real = _v1(request.param)
    runtime = ServingRuntime([])
    app = create_serving_app(
        runtime,
        refresh_s=0.1,
        deployments=DeploymentSource(
            SqlDeployments(real.stores), [real.endpoint], alias_refresh_s=0.1
        ),
        prediction_log=PredictionLog(EventLog(real.stores), flush_interval_s=0.2),
    )
    eventually(lambda: runtime.ready)
    try:
        with ThreadedServer(app) as server:
            yield real, server.url
    finally:
        app.state.stop_refresh.set()


def _window(duration_s: float = 900.0) -> tuple[int, float]:
    """A window length (seconds) whose current bucket started before now and ends more
    than ``duration_s`` from now, so every request of this test falls into one window
    (the trigger's windows end on multiples of their length), and that bucket's end."""
    now = time.time()
    for length in range(3600, 7200, 7):
        start = math.floor(now / length) * length
        if start + length - now > duration_s:
            return length, float(start + length)
    raise AssertionError("no window length fits")  # pragma: no cover - 514 tries


def _logged(stores: Stores, endpoint: str, requests: int) -> bool:
    """Have ``requests`` predictions and as many labels reached the prediction log?"""
    plog = PredictionLog(EventLog(stores))
    try:
        return (
            plog.read_predictions(endpoint).num_rows >= requests
            and plog.read_feedback().num_rows >= requests
        )
    finally:
        plog.close()


def _accuracy(model_name: str, version: int, rows: pd.DataFrame) -> float:
    model = ls.load_model(f"models:/{model_name}/{version}")
    said = np.asarray(model.predict(rows.drop(columns=LABEL))).astype(int)
    return float((said == rows[LABEL].to_numpy()).mean())


def _params(real: Real, metrics_url: str) -> dict[str, Any]:
    """The retraining pipeline's params for ``real``: a margin of 0.1 accuracy over the
    champion, and a 25% -> 50% -> 100% canary, a second each, watched every 0.3 s over
    the last 3 s."""
    return {
        "endpoint": real.endpoint,
        "model": real.model,
        "base": f"{real.case.name}-train",
        "evaluation": f"{real.case.name}-eval-shifted",
        "label": LABEL,
        "margin": 0.1,
        "plan": {
            "steps": [{"weight": w, "bake_s": 1} for w in (0.25, 0.5)]
            + [{"weight": 1.0, "bake_s": 0}],
            "guardrails": [
                {"metric": "error_rate", "op": "<=", "threshold": 0.05},
                {"metric": "latency_p99_ms", "op": "<", "threshold": 5000},
                {"metric": "accuracy", "op": ">=", "threshold": 0.75},
            ],
            "interval_s": 0.3,
            "window_s": 3,
            "min_requests": 1,
            "metrics_url": metrics_url,
        },
    }


@pytest.mark.slow
def test_drift_on_real_data_retrains_gates_canaries_and_promotes_a_better_model(
    served: tuple[Real, str], tmp_path: Path
) -> None:
    real, url = served
    endpoint, model, name = real.endpoint, real.model, real.case.name
    n_train, n_live, _ = real.case.sizes
    length, window_end = _window()
    path = tmp_path / "retrain_flow.py"
    path.write_text(PIPELINE)
    store = TriggerStore(open_stores())
    store.add(
        Trigger(
            f"{name}-drift",
            "drift",
            f"{path}:retraining",
            params=_params(real, f"{url}/metrics"),
            spec={"endpoint": endpoint, "above": 0.15, "window": length},
        )
    )
    controller = Controller(open_stores(), holder="loop-1", interval_s=0.1)
    # before any traffic: nothing to see, nothing fires
    assert [e.kind for e in controller.step(window_end + 1).events] == []

    # 1. the new device's measurements reach v1, and their labels come back
    traffic = Traffic(url, endpoint, real.live)
    traffic.send_all()
    assert set(traffic.answers) == {(200, "1")}, traffic.answers
    assert traffic.answers[(200, "1")] == n_live // 10
    eventually(lambda: _logged(real.stores, endpoint, n_live // 10), timeout_s=60)
    seen = observe(endpoint, length, until=window_end, stores=real.stores).metrics()
    assert seen["drift_share"] > 0.15, seen
    assert seen["accuracy"] < 0.8, seen  # v1 really degraded on the shifted inputs
    assert traffic.correct["1"] / traffic.seen["1"] < 0.8

    # 2. the controller sees the drift, fires once and runs the retraining pipeline
    report = controller.step(window_end + 1)
    kinds = [(e.kind, e.trigger) for e in report.events if e.trigger == f"{name}-drift"]
    assert kinds == [
        ("fired", f"{name}-drift"),
        ("launched", f"{name}-drift"),
        ("done", f"{name}-drift"),
    ], report.events
    (firing,) = loop_status(open_stores())
    assert firing.status == "done", firing
    assert firing.reason.startswith("drift_share ") and firing.reason.endswith(
        f"> 0.15 on {endpoint} over {length}"
    ), firing.reason
    assert firing.pipeline_run_uuid is not None, firing
    run = ls.pipelines.get_run(firing.pipeline_run_uuid)
    assert run.status == "FINISHED"
    assert set(run.steps) == {"labelled_traffic", "retrain", "gate", "roll_out"}
    # v2 was trained on the original rows plus the 200 labelled shifted ones
    assert len(ls.get_dataset(f"{name}-train-retrain").to_pandas()) == n_train + n_live

    # 3. v2 passed its gates against the champion, with the evidence kept
    results = {r.gate: r for r in gate_results(model, 2)}
    assert set(results) == {"primary:accuracy", "guardrail:f1", "lineage"}, results
    assert all(r.passed for r in results.values()), results
    primary = results["primary:accuracy"].evidence
    assert primary["delta"] >= 0.1 and primary["bootstrap"]["p_value"] <= 0.05, primary
    assert require_gates_passed(model, 2).passed

    # 4. the rollout waits for a second user, then the controller carries it through
    (rollout,) = Rollouts(open_stores()).list(endpoint=endpoint)
    assert (rollout.version, rollout.status) == ("2", "awaiting_approval"), rollout
    Rollouts(open_stores(), actor="bob").approve(rollout.rollout_id, comment="gates passed")
    sender = threading.Thread(target=traffic.keep_sending, daemon=True)
    sender.start()
    measured: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + 120
        while (now := Rollouts(open_stores()).get(rollout.rollout_id)).status not in (
            "promoted",
            "rolled_back",
            "failed",
        ):
            assert time.monotonic() < deadline, f"the rollout is still {now.status} after 120 s"
            measured.append(dict((now.watch.get("last") or {}).get("values") or {}))
            controller.step()
            time.sleep(0.1)
        done = Rollouts(open_stores()).get(rollout.rollout_id)
        assert done.status == "promoted", (done.status, done.reason)
        measured.append(dict((done.watch.get("last") or {}).get("values") or {}))
        # the guardrails watched v2's labelled accuracy and its error rate on the way
        assert any(v.get("accuracy", 0) >= 0.75 for v in measured), measured
        assert any(v.get("error_rate") == 0.0 for v in measured), measured
        trail = [e["action"] for e in Rollouts(open_stores()).events(rollout.rollout_id)]
        assert trail.count("rollout.canary") == 2 and trail[-1] == "rollout.promote", trail
        deployment = SqlDeployments(open_stores()).get(endpoint)
        assert deployment.policy == "single" and [a.version for a in deployment.arms] == [2]
        aliases = SqlRegistry(open_stores()).get_registered_model(model).aliases
        assert aliases["production"] == 2
        before = traffic.answers[(200, "2")]
        eventually(lambda: traffic.answers[(200, "2")] > before + 20, timeout_s=60)
    finally:
        traffic.stop.set()
        sender.join(30)
    assert {status for status, _ in traffic.answers} == {200}, traffic.answers
    assert len(loop_status(open_stores())) == 1  # the drift fired once

    # 5. the promoted model is clearly better on held-out rows from the new device
    old, new = _accuracy(model, 1, real.test), _accuracy(model, 2, real.test)
    assert new >= 0.9 and new - old >= 0.15, (old, new)
    assert traffic.correct["2"] / traffic.seen["2"] >= 0.85, traffic.correct


def test_a_challenger_that_does_not_beat_the_champion_stops_at_its_gates(
    tmp_path: Path,
) -> None:
    """No traffic came back, so the retraining has only v1's rows: its v2 is no better
    on the shifted evaluation set, and the loop stops at the gates."""
    cancer = _v1(CANCER)
    path = tmp_path / "retrain_flow.py"
    path.write_text(PIPELINE)
    store = TriggerStore(open_stores())
    store.add(Trigger("by-hand", "manual", f"{path}:retraining", params=_params(cancer, "")))
    store.fire_manual("by-hand", "retrain after the device change")
    report = Controller(open_stores(), holder="loop-1").step()
    assert [e.kind for e in report.events] == ["launched", "stopped"], report.events

    with pytest.raises(GateFailed, match="primary:accuracy") as failed:
        require_gates_passed("cancer", 2)
    assert "improvement" in str(failed.value) and "not significant" in str(failed.value)
    results = {r.gate: r.passed for r in gate_results("cancer", 2)}
    assert results["primary:accuracy"] is False and results["lineage"] is True, results
    (view,) = loop_status(open_stores())
    assert (view.status, view.reason) == ("stopped", "retrain after the device change"), view
    assert "primary:accuracy" in view.outcome["gate"], view.outcome
    assert "improvement" in view.outcome["gate"], view.outcome
    # the pipeline stopped at its gate step: no rollout, production still v1
    assert Rollouts(open_stores()).list(endpoint=cancer.endpoint) == []
    aliases = SqlRegistry(open_stores()).get_registered_model("cancer").aliases
    assert aliases["production"] == 1
    (run,) = ls.pipelines.list_runs()
    assert run.status == "FAILED", run
    assert run.steps["retrain"].status == "FINISHED" and run.steps["gate"].status == "FAILED"
    assert "roll_out" not in run.steps or run.steps["roll_out"].status != "FINISHED"
