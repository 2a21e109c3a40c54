"""Realised performance per window: the metrics equal scikit-learn's on generated data
(binary, multiclass, regression), coverage and delay beside them, segments, and concept
drift caught by accuracy while drift on the inputs shows nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

import loopstack.monitoring as mon
from loopstack.errors import Invalid
from tests.monitoring._perfdata import START, flip_after, logistic_data, scored


def _multiclass(n: int, k: int, rng: np.random.Generator) -> pd.DataFrame:
    logits = rng.normal(size=(n, k)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in proba])
    frame = pd.DataFrame({"ts": START + pd.to_timedelta(rng.random(n) * 3000, unit="s")})
    frame["prediction"] = proba.argmax(axis=1)
    for i in range(k):
        frame[f"proba_{i}"] = proba[:, i]
    frame["label"] = y
    return frame


def test_binary_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    train = logistic_data(2000, rng)
    model = LogisticRegression().fit(train[["x0", "x1"]].to_numpy(), train["label"])
    frame = scored(model, logistic_data(1500, rng))
    row = mon.performance(frame, window="1h").rows[0]
    y, pred, p1 = frame["label"], frame["prediction"], frame["proba_1"]
    assert row["rows"] == row["labelled"] == 1500
    assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert row["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert row["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert row["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert row["log_loss"] == pytest.approx(skm.log_loss(y, frame[["proba_0", "proba_1"]]))
    neg = mon.performance(frame, positive=0).rows[0]
    assert neg["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label=0))
    assert neg["roc_auc"] == pytest.approx(skm.roc_auc_score(1 - y, frame["proba_0"]))


def test_string_classes_and_ties_in_scores() -> None:
    rng = np.random.default_rng(2)
    score = np.round(rng.random(800), 1)  # many ties
    y = np.where(rng.random(800) < score, "yes", "no")
    frame = pd.DataFrame(
        {
            "ts": START,
            "prediction": np.where(score > 0.5, "yes", "no"),
            "label": y,
            "proba_0": 1 - score,
            "proba_1": score,
        }
    )
    row = mon.performance(frame).rows[0]
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", score))
    assert row["f1"] == pytest.approx(skm.f1_score(y, frame["prediction"], pos_label="yes"))


def test_multiclass_macro_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    frame = _multiclass(1200, 4, rng)
    row = mon.performance(frame).rows[0]
    y, pred = frame["label"], frame["prediction"]
    proba = frame[[f"proba_{i}" for i in range(4)]].to_numpy()
    assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert row[name] == pytest.approx(fn(y, pred, average="macro", zero_division=0)), name
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert row["log_loss"] == pytest.approx(skm.log_loss(y, proba))


def test_regression_metrics_equal_sklearn_and_mape_skips_zero_labels() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, size=900)
    y[:25] = 0.0
    pred = y + rng.normal(0, 1, size=900)
    frame = pd.DataFrame({"ts": START, "prediction": pred, "label": y})
    report = mon.performance(frame)
    assert report.task == "regression"
    row = report.rows[0]
    assert row["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert row["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    keep = y != 0
    assert row["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y[keep], pred[keep]))
    assert row["mape_skipped"] == 25
    assert any("MAPE" in n for n in report.notes)


def test_windows_segments_coverage_and_delay() -> None:
    rng = np.random.default_rng(5)
    frame = _multiclass(3000, 3, rng)
    frame["ts"] = START + pd.to_timedelta(rng.random(3000) * 3 * 3600, unit="s")
    frame["region"] = rng.choice(["eu", "us"], size=3000)
    frame["label_delay_s"] = rng.exponential(600, size=3000)
    missing = rng.random(3000) < 0.3
    frame["label"] = frame["label"].astype(object).where(~missing, None)
    frame.loc[missing, "label_delay_s"] = np.nan
    report = mon.performance(frame, window="1h", segment_by="region", classes=[0, 1, 2])
    assert len(report.rows) == 6
    for r in report.rows:
        start = pd.Timestamp(r["window_start"])
        g = frame[(frame["ts"] >= start) & (frame["ts"] < start + pd.Timedelta("1h"))]
        g = g[g["region"] == r["segment"]]
        lab = g[g["label"].notna()]
        assert r["rows"] == len(g) and r["labelled"] == len(lab)
        assert r["label_coverage"] == pytest.approx(len(lab) / len(g))
        assert r["label_delay_median_s"] == pytest.approx(lab["label_delay_s"].median())
        assert r["label_delay_p90_s"] == pytest.approx(lab["label_delay_s"].quantile(0.9))
        assert r["accuracy"] == pytest.approx(
            skm.accuracy_score(lab["label"].astype(int), lab["prediction"])
        )
    assert set(report.to_frame().columns) >= {"window_start", "segment", "accuracy"}
    assert report.to_dict()["rows"][0]["window_start"].startswith("2026-01-01T00:00")
    assert "accuracy" in report.render(width=160)


def test_bad_input_is_invalid() -> None:
    frame = pd.DataFrame({"ts": [START], "prediction": [1]})
    with pytest.raises(Invalid, match="'label'"):
        mon.performance(frame)
    frame["label"] = 1
    with pytest.raises(Invalid, match="window"):
        mon.performance(frame, window="an hour")
    with pytest.raises(Invalid, match="task"):
        mon.performance(frame, task="ranking")


def test_concept_drift_drops_accuracy_while_input_drift_sees_nothing() -> None:
    rng = np.random.default_rng(6)
    train = logistic_data(3000, rng)
    model = LogisticRegression().fit(train[["x0", "x1"]].to_numpy(), train["label"])
    live = scored(model, logistic_data(6000, rng, hours=6))
    t = START + pd.Timedelta("3h")
    drifted = flip_after(live, t)
    rows = mon.performance(drifted, window="1h").rows
    before = [r["accuracy"] for r in rows if pd.Timestamp(r["window_start"]) < t]
    after = [r["accuracy"] for r in rows if pd.Timestamp(r["window_start"]) >= t]
    assert len(before) == len(after) == 3
    assert min(before) > 0.7
    assert max(after) < min(before) - 0.15  # a significant drop, in every window after T
    ref = scored(model, train)[["x0", "x1", "prediction"]]
    for start in pd.date_range(START, periods=6, freq="1h"):
        window = drifted[(drifted["ts"] >= start) & (drifted["ts"] < start + pd.Timedelta("1h"))]
        report = mon.drift(ref, window[["x0", "x1", "prediction"]])
        assert not report.dataset_drift, start
        assert not any(c.drifted for c in report.columns), start
