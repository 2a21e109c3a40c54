"""The candidate's guardrail metrics, measured from the prediction log as a replica
writes it: drift of its inputs and predictions against its training reference, realised
accuracy from the labels that came back, the estimate from its probabilities, latency;
only the candidate's rows count."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.loop import Guardrail, RolloutPlan, measure_candidate
from loopstack.serving import PredictionLog
from loopstack.store import open_stores
from loopstack.store.events import EventLog

PLAN = RolloutPlan(
    shadow_s=60,
    guardrails=[
        Guardrail("prediction_drift", "<", 0.5),
        Guardrail("drift_share", "<", 0.5),
        Guardrail("accuracy", ">=", 0.8),
        Guardrail("estimated_accuracy", ">=", 0.8),
        Guardrail("latency_p99_ms", "<", 100),
    ],
    window_s=300,
)


@pytest.fixture
def model() -> tuple[LogisticRegression, pd.DataFrame, np.ndarray]:
    """iris/1 trained on a registered dataset (its monitoring reference)."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = pd.DataFrame(X)
    dv = ls.register_dataset("iris-train", frame)
    clf = LogisticRegression(max_iter=300).fit(frame, y)
    with ls.start_run(experiment="guardrails") as run:
        run.log_input(dv, context="training")
        run.log_model(clf, name="iris", artifact_path="m", sample_input=frame.head(3))
    return clf, frame, np.asarray(y)


def _log(
    clf: LogisticRegression,
    frame: pd.DataFrame,
    labels: np.ndarray,
    version: str,
    latency_ms: float,
) -> None:
    """``frame`` answered by ``version`` in requests of 10 rows, each labelled later."""
    plog = PredictionLog(EventLog(open_stores()), flush_interval_s=60)
    for start in range(0, len(frame), 10):
        part = frame.iloc[start : start + 10]
        rid = uuid.uuid4().hex
        output = {"predict": clf.predict(part), "predict_proba": clf.predict_proba(part)}
        plog.record(
            rid,
            "iris-api",
            version,
            output,
            inputs=part.to_dict("records"),
            arm="canary",
            latency_ms=latency_ms,
        )
        plog.record_feedback(rid, label=labels[start : start + 10].tolist())
    plog.close(30)
    time.sleep(0.01)


def _measure(plan: RolloutPlan = PLAN, ahead_s: float = 0.0) -> dict[str, float]:
    got = measure_candidate(
        open_stores(),
        endpoint="iris-api",
        model_name="iris",
        version="1",
        champion_version=None,
        plan=plan,
        shadowing=False,
        now=time.time() + ahead_s,
    )
    return {**got.values, "breached": {b.guardrail.metric for b in got.breaches}}  # type: ignore[dict-item]


def test_a_candidate_like_its_training_data_keeps_every_guardrail(model: tuple) -> None:
    clf, frame, y = model
    _log(clf, frame, y, "1", latency_ms=4)
    _log(clf, frame + 10, y, "7", latency_ms=900)  # another version's rows do not count
    got = _measure()
    assert got["requests"] == 15
    assert got["latency_p99_ms"] == pytest.approx(4)
    assert got["prediction_drift"] < 0.5 and got["drift_share"] < 0.5
    assert got["accuracy"] > 0.9 and got["estimated_accuracy"] > 0.8
    assert got["breached"] == set()


def test_a_drifted_wrong_candidate_breaks_drift_and_accuracy(model: tuple) -> None:
    clf, frame, y = model
    shifted = frame.copy()
    shifted["petal length (cm)"] += 4.0  # every flower looks like a virginica now
    shifted["sepal width (cm)"] -= 2.0
    _log(clf, shifted, y, "1", latency_ms=400)
    got = _measure()
    assert got["prediction_drift"] >= 0.5
    assert got["drift_share"] >= 0.5
    assert got["accuracy"] < 0.8
    assert got["breached"] >= {"prediction_drift", "drift_share", "accuracy", "latency_p99_ms"}


def test_error_rate_is_read_from_the_failed_requests_every_replica_logs(model: tuple) -> None:
    """Without a metrics_url the error rate is the version's failed requests in the
    window (the ``prediction_errors`` stream) over its answered plus failed ones; another
    version's failures, a shadow copy's, and a failure outside the window do not count."""
    clf, frame, y = model
    _log(clf, frame, y, "1", latency_ms=4)  # 15 answered requests
    plog = PredictionLog(EventLog(open_stores()), flush_interval_s=60)
    for i in range(5):
        plog.record_error(f"bad-{i}", "iris-api", "1", 500, "the model raised", arm="canary")
    plog.record_error("other", "iris-api", "7", 500, "not the candidate's")
    plog.record_error("copy", "iris-api", "1", 500, "a shadow copy", shadow=True)
    plog.record_error("old", "iris-api", "1", 500, "long ago", ts=time.time() - 3600)
    plog.close(30)
    plan = RolloutPlan(shadow_s=60, guardrails=[Guardrail("error_rate", "<=", 0.2)], window_s=300)
    got = _measure(plan, ahead_s=1)
    assert got["error_rate"] == pytest.approx(5 / 20)
    assert got["breached"] == {"error_rate"}
