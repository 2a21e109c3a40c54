"""CBPE: the estimate lands within its stated interval of the realised value on a
calibrated model in about the nominal share of windows (counted across seeds), and stops
matching under concept drift; isotonic calibration equals scikit-learn's; the confidence
distribution's shift is seen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

import loopstack.monitoring as mon
from loopstack.errors import Invalid
from loopstack.monitoring._estimate import isotonic_fit, platt_fit
from tests.monitoring._perfdata import START, flip_after, logistic_data, scored


def _model(rng: np.random.Generator) -> LogisticRegression:
    train = logistic_data(3000, rng)
    return LogisticRegression().fit(train[["x0", "x1"]].to_numpy(), train["label"])


def test_isotonic_fit_equals_sklearn() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.random(2000), 2)
    y = (rng.random(2000) < x**2).astype(float)
    xs, fitted = isotonic_fit(x, y)
    probe = rng.random(500)
    ours = np.interp(probe, xs, fitted)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(x, y).predict(probe)
    assert np.allclose(ours, theirs)


def test_platt_fit_equals_an_unpenalised_logistic_regression_on_the_logit() -> None:
    rng = np.random.default_rng(9)
    x = np.clip(rng.random(3000), 0.01, 0.99)
    z = np.log(x / (1 - x))
    y = (rng.random(3000) < 1 / (1 + np.exp(-(0.5 * z - 0.4)))).astype(float)
    a, b = platt_fit(x, y)
    lr = LogisticRegression(C=1e9, max_iter=1000).fit(z[:, None], y)
    assert a == pytest.approx(lr.coef_[0, 0], rel=1e-3)
    assert b == pytest.approx(lr.intercept_[0], rel=1e-3, abs=1e-3)


def test_uncalibrated_expected_accuracy_is_mean_confidence() -> None:
    rng = np.random.default_rng(1)
    frame = scored(_model(rng), logistic_data(1000, rng)).drop(columns="label")
    row = mon.estimate_performance(frame, n_samples=50).rows[0]
    assert row["accuracy"] == pytest.approx(frame[["proba_0", "proba_1"]].max(axis=1).mean())
    assert row["accuracy_lower"] < row["accuracy"] < row["accuracy_upper"]
    assert row["confidence_ks"] is None


def test_estimate_covers_realised_near_the_nominal_level() -> None:
    counts = {m: [0, 0] for m in ("accuracy", "f1", "roc_auc")}
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        model = _model(rng)
        reference = scored(model, logistic_data(3000, rng))
        live = scored(model, logistic_data(8 * 400, rng, hours=8))
        estimate = mon.estimate_performance(
            live.drop(columns="label"),
            window="1h",
            calibration=reference,
            method="platt" if seed % 2 else "isotonic",
            n_samples=200,
            seed=seed,
        )
        realised = mon.performance(live, window="1h")
        table = estimate.compare(realised)
        for m in counts:
            within = table[table["metric"] == m]["within"]
            counts[m][0] += int(within.sum())
            counts[m][1] += len(within)
    for m, (hit, total) in counts.items():
        assert total == 48, m
        assert hit / total >= 0.85, (m, hit, total)  # nominal 0.95, with room for sampling
    # and the interval is not trivially wide
    widths = [r["accuracy_upper"] - r["accuracy_lower"] for r in estimate.rows]
    assert max(widths) < 0.15


def test_estimate_parts_from_realised_under_concept_drift() -> None:
    rng = np.random.default_rng(7)
    model = _model(rng)
    reference = scored(model, logistic_data(3000, rng))
    live = scored(model, logistic_data(6 * 500, rng, hours=6))
    t = START + pd.Timedelta("3h")
    drifted = flip_after(live, t)
    estimate = mon.estimate_performance(
        drifted.drop(columns="label"), calibration=reference, n_samples=200
    )
    table = estimate.compare(mon.performance(drifted))
    acc = table[table["metric"] == "accuracy"]
    before = acc[pd.to_datetime(acc["window_start"], utc=True) < t]
    after = acc[pd.to_datetime(acc["window_start"], utc=True) >= t]
    assert before["within"].sum() >= 2
    assert not after["within"].any()
    assert (after["realised"] < after["lower"]).all()
    # the inputs did not move, so neither did the model's confidence
    assert all(r["confidence_p"] > 0.001 for r in estimate.rows)


def test_multiclass_estimate_and_confidence_shift() -> None:
    rng = np.random.default_rng(8)
    k, n = 3, 4000
    w = rng.normal(size=(2, k)) * 2

    def data(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(size=(n, 2)) + shift
        logits = x @ w
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
        frame = pd.DataFrame({"ts": START + pd.to_timedelta(rng.random(n) * 3599, unit="s")})
        frame["prediction"] = p.argmax(axis=1)
        for i in range(k):
            frame[f"proba_{i}"] = p[:, i]
        frame["label"] = y
        return frame

    reference, live, moved = data(n, 0.0), data(n, 0.0), data(n, 1.5)
    est = mon.estimate_performance(live.drop(columns="label"), calibration=reference)
    table = est.compare(mon.performance(live))
    assert table["within"].sum() >= 4  # of accuracy, precision, recall, f1, roc_auc
    assert est.rows[0]["confidence_p"] > 0.001
    shifted = mon.estimate_performance(moved.drop(columns="label"), reference=reference)
    assert shifted.rows[0]["confidence_p"] < 1e-6
    assert "CBPE" in est.render(width=200) and est.to_dict()["rows"][0]["rows"] == n


def test_bad_estimate_input_is_invalid() -> None:
    frame = pd.DataFrame({"ts": [START], "prediction": [1]})
    with pytest.raises(Invalid, match="proba"):
        mon.estimate_performance(frame)
    frame["proba_0"], frame["proba_1"] = 0.2, 0.8
    with pytest.raises(Invalid, match="calibration"):
        mon.estimate_performance(frame, calibration=frame)
    with pytest.raises(Invalid, match="positive"):
        mon.estimate_performance(frame, positive=5)
    with pytest.raises(Invalid, match="method"):
        mon.estimate_performance(frame, method="histogram")
