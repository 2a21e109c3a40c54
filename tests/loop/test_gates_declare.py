"""Gate declarations are checked when they are made; the bootstrap's metrics agree with
monitoring's (and scikit-learn's) point values; the bootstrap is seeded and paired."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from loopstack.errors import Invalid
from loopstack.loop import Fairness, Gates, MetricThreshold, paired_bootstrap
from loopstack.loop._gates_metrics import Predictions, point, weighted


def test_unknown_metric_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(Invalid) as err:
        MetricThreshold("acuracy", min_value=0.8)
    assert "'acuracy'" in err.value.message
    for known in ("accuracy", "roc_auc", "log_loss", "rmse", "mape"):
        assert known in err.value.message
    with pytest.raises(Invalid, match="fairness metric must be one of"):
        Fairness("auc", group="g", max_gap=0.1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"metric": "accuracy", "min_value": 0.9, "max_value": 0.8}, "must not exceed"),
        ({"metric": "accuracy", "min_improvement": 0.0, "max_regression": 0.1}, "not both"),
        ({"metric": "accuracy", "relative": True, "min_value": 0.5}, "no change threshold"),
        ({"metric": "accuracy", "max_regression": -0.1}, "must be >= 0"),
        ({"metric": "accuracy", "min_value": 1.5}, "lies in [0, 1]"),
        ({"metric": "log_loss", "higher_is_better": True}, "lower-is-better"),
        ({"metric": "rmse", "min_value": float("nan")}, "finite number"),
        ({"metric": "accuracy", "min_value": 0.5, "slice": {}}, "non-empty mapping"),
        ({"metric": "f1"}, "must declare a threshold"),
    ],
)
def test_contradictory_or_bad_options_are_refused(kwargs: dict, words: str) -> None:
    with pytest.raises(Invalid) as err:
        MetricThreshold(**kwargs)
    assert words in err.value.message


def test_direction_comes_from_the_metric() -> None:
    assert MetricThreshold("roc_auc", min_value=0.5).higher_is_better is True
    assert MetricThreshold("log_loss", max_value=0.5).higher_is_better is False
    assert MetricThreshold("mae", max_regression=0.1).higher_is_better is False


def test_gates_refuse_what_cannot_work() -> None:
    with pytest.raises(Invalid, match="min_improvement .*or max_regression; got neither"):
        Gates(primary=MetricThreshold("accuracy", min_value=0.5))
    with pytest.raises(Invalid, match="mix classification and regression"):
        Gates(
            primary=MetricThreshold("accuracy", min_improvement=0.0),
            guardrails=[MetricThreshold("rmse", max_regression=0.1)],
        )
    with pytest.raises(Invalid, match="once"):
        Gates(
            primary=MetricThreshold("accuracy", min_improvement=0.0),
            guardrails=[MetricThreshold("f1", max_regression=0.1)] * 2,
        )
    with pytest.raises(Invalid, match="between 0 and 1"):
        Gates(primary=MetricThreshold("accuracy", min_improvement=0.0), significance=5)
    with pytest.raises(Invalid, match="n_bootstrap"):
        Gates(primary=MetricThreshold("accuracy", min_improvement=0.0), n_bootstrap=10)
    with pytest.raises(Invalid, match="max_gap, floor or both"):
        Fairness("recall", group="g")


def test_gates_round_trip_through_json_and_from_dict_checks_again() -> None:
    gates = Gates(
        primary=MetricThreshold("roc_auc", min_improvement=0.01, relative=True),
        guardrails=[
            MetricThreshold("log_loss", max_regression=0.02),
            MetricThreshold("accuracy", min_value=0.7, slice={"region": 1}),
        ],
        fairness=Fairness("accuracy", group="region", max_gap=0.05, floor=0.6, groups=[0, 1]),
        significance=0.01,
        n_bootstrap=500,
        seed=7,
    )
    again = Gates.from_dict(json.loads(json.dumps(gates.to_dict())))
    assert again == gates
    assert again.guardrails[1].name == "accuracy[region=1]"
    data = gates.to_dict()
    data["primary"]["metric"] = "auc"
    with pytest.raises(Invalid, match="must be one of"):
        Gates.from_dict(data)
    with pytest.raises(Invalid, match="unknown keys"):
        Gates.from_dict({**gates.to_dict(), "margin": 0.1})
    with pytest.raises(Invalid, match="needs"):
        Fairness.from_dict({"metric": "recall", "max_gap": 0.1})


def _binary(n: int = 400, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    score[:40] = 0.5  # ties
    proba = np.column_stack([1 - score, score])
    return Predictions(y, (score > 0.5).astype(int), proba, (0, 1))


def test_weighted_metrics_at_unit_weights_are_the_point_values_and_sklearns() -> None:
    p = _binary()
    ones = np.ones((1, p.y.size))
    sk = {
        "accuracy": skm.accuracy_score(p.y, p.pred),
        "precision": skm.precision_score(p.y, p.pred),
        "recall": skm.recall_score(p.y, p.pred),
        "f1": skm.f1_score(p.y, p.pred),
        "roc_auc": skm.roc_auc_score(p.y, p.proba[:, 1]),
        "log_loss": skm.log_loss(p.y, p.proba),
    }
    for metric, expected in sk.items():
        assert point(metric, p) == pytest.approx(expected, abs=1e-9), metric
        assert weighted(metric, ones, p)[0] == pytest.approx(expected, abs=1e-9), metric
    rng = np.random.default_rng(3)
    y3 = rng.integers(0, 3, 300)
    pr = rng.dirichlet([1, 1, 1], 300)
    p3 = Predictions(y3, pr.argmax(axis=1), pr, (0, 1, 2))
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        assert weighted(metric, np.ones((1, 300)), p3)[0] == pytest.approx(point(metric, p3))
    yr = rng.normal(size=200) + 3
    reg = Predictions(yr, yr + rng.normal(size=200) * 0.3)
    for metric, expected in {
        "mae": skm.mean_absolute_error(yr, reg.pred),
        "rmse": skm.mean_squared_error(yr, reg.pred) ** 0.5,
        "mape": skm.mean_absolute_percentage_error(yr, reg.pred),
    }.items():
        assert weighted(metric, np.ones((1, 200)), reg)[0] == pytest.approx(expected)


def test_weighted_counts_equal_the_metric_of_the_resampled_rows() -> None:
    p = _binary(200, seed=4)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 200, 200)
    w = np.bincount(idx, minlength=200)[None, :].astype(float)
    drawn = Predictions(p.y[idx], p.pred[idx], p.proba[idx], p.classes)
    for metric in ("accuracy", "f1", "roc_auc", "log_loss"):
        assert weighted(metric, w, p)[0] == pytest.approx(point(metric, drawn)), metric


def test_paired_bootstrap_is_seeded_and_tells_a_real_gap_from_none() -> None:
    p = _binary(600, seed=1)
    worse_pred = p.pred.copy()
    worse_pred[:120] = 1 - worse_pred[:120]  # 120 of 600 rows flipped: a real gap
    worse = Predictions(p.y, worse_pred, p.proba, p.classes)
    a = paired_bootstrap("accuracy", p, worse, higher_is_better=True, n_bootstrap=500, seed=1)
    b = paired_bootstrap("accuracy", p, worse, higher_is_better=True, n_bootstrap=500, seed=1)
    assert a == b
    assert a.p_value < 0.01 and a.ci_low > 0
    same = paired_bootstrap("accuracy", p, p, higher_is_better=True, n_bootstrap=500)
    assert same.p_value == 1.0  # no resample shows any improvement
    # lower is better: the worse model's log loss is "improved" by the better one
    lossy = Predictions(p.y, p.pred, np.clip(p.proba * 0.6 + 0.2, 0, 1), p.classes)
    c = paired_bootstrap("log_loss", p, lossy, higher_is_better=False, n_bootstrap=300)
    assert point("log_loss", p) < point("log_loss", lossy)
    assert c.ci_low > 0 and c.p_value < 0.05


def test_a_significance_the_bootstrap_cannot_reach_is_refused() -> None:
    with pytest.raises(Invalid, match="smallest p-value is 1/501"):
        Gates(
            primary=MetricThreshold("accuracy", min_improvement=0.0),
            significance=0.001,
            n_bootstrap=500,
        )


def test_the_gate_names_are_exported() -> None:
    import loopstack.loop as loop

    for name in loop.__all__:
        assert getattr(loop, name) is not None, name
    for name in ("Gates", "MetricThreshold", "Fairness", "evaluate_gates", "record_gates"):
        assert name in loop.__all__
