"""Gates over real scikit-learn models, logged and registered for real, on SQLite and
PostgreSQL: what passes, what fails and why, and the evidence kept on the version."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.data import Suite
from loopstack.errors import GateFailed, Invalid, NotFound
from loopstack.loop import (
    GATES_REASONS_TAG,
    GATES_TAG,
    Fairness,
    GateReport,
    Gates,
    MetricThreshold,
    evaluate_gates,
    gate_results,
    record_gates,
    require_gates_passed,
)
from loopstack.registry import registry

FEATURES = ["x0", "x1", "x2", "x3", "region"]


def make(n: int, seed: int) -> pd.DataFrame:
    """Two regions whose label follows different features: a linear model fits region 0
    only; boosted trees fit both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    region = (rng.random(n) < 0.35).astype(int)
    z0 = x[:, 0] + x[:, 1] + 0.5 * rng.normal(size=n)
    z1 = x[:, 2] - x[:, 0] + 0.5 * rng.normal(size=n)
    frame = pd.DataFrame(x, columns=FEATURES[:4])
    frame["region"] = region
    frame["y"] = np.where(region == 0, z0 > 0, z1 > 0).astype(int)
    return frame


@cache
def trained() -> dict[str, Any]:
    """Estimators trained once per test session (each test logs them into its own store)."""
    train = make(1500, 1)
    x, y = train[FEATURES], train["y"]
    only0 = train[train["region"] == 0]
    return {
        "linear": LogisticRegression(max_iter=500).fit(x, y),
        "boosted": GradientBoostingClassifier(random_state=0, subsample=0.7).fit(x, y),
        "boosted_s1": GradientBoostingClassifier(random_state=1, subsample=0.7).fit(x, y),
        "region0_only": GradientBoostingClassifier(random_state=0).fit(only0[FEATURES], only0["y"]),
    }


@pytest.fixture
def holdout() -> pd.DataFrame:
    return make(800, 2)


def register(kind: str, *, trained_on: Any = None, name: str = "fraud") -> Any:
    """Log and register one of the trained models; with ``trained_on`` (a dataset
    version) the run records it as its training input."""
    with ls.start_run(experiment="gates") as run:
        if trained_on is not None:
            run.log_input(trained_on, context="training")
        return run.log_model(trained()[kind], name=name, sample_input=make(5, 9)[FEATURES])


@pytest.fixture
def train_set(use_db: str) -> Any:
    return ls.register_dataset("train", make(1500, 1))


@pytest.fixture
def validated(use_db: str, holdout: pd.DataFrame) -> Any:
    """The holdout registered as a dataset version, with a passed validation result."""
    dv = ls.register_dataset("holdout", holdout)
    assert ls.infer_suite(dv).validate(dv).passed
    return dv


GATES = Gates(
    primary=MetricThreshold("accuracy", min_improvement=0.02),
    guardrails=[MetricThreshold("log_loss", max_regression=0.05)],
    fairness=Fairness("accuracy", group="region", max_gap=0.1, floor=0.6),
    n_bootstrap=500,
)


def test_a_clearly_better_challenger_passes_and_its_evidence_is_kept(
    train_set: Any, validated: Any, holdout: pd.DataFrame
) -> None:
    champion = register("linear", trained_on=train_set)
    registry().set_alias("fraud", "champion", champion.version)
    challenger = register("boosted", trained_on=train_set)
    report = evaluate_gates(
        GATES, challenger.uri, "models:/fraud@champion", data=holdout, dataset_version=validated
    )
    assert report.passed, report.failed_reasons()
    assert [r.gate for r in report.results] == [
        "data_validation",
        "primary:accuracy",
        "guardrail:log_loss",
        "fairness:accuracy by region",
        "lineage",
    ]
    primary = report.get("primary:accuracy").evidence
    assert primary["value"] > primary["champion"] + 0.1
    assert primary["delta"] == pytest.approx(primary["value"] - primary["champion"])
    assert primary["bootstrap"]["p_value"] < 0.01
    low, high = primary["bootstrap"]["ci"]
    assert 0 < low < primary["delta"] < high
    assert report.champion == f"models:/fraud/{champion.version}"
    text = report.render()
    assert "passed all 5 gates" in text and "primary:accuracy" in text
    assert max(len(line) for line in text.splitlines()) <= 80

    evaluation = record_gates(report, "fraud", challenger.version)
    stored = gate_results("fraud", challenger.version)
    assert [r.to_dict() for r in stored] == [r.to_dict() for r in report.results]
    assert stored[1].evidence["bootstrap"]["p_value"] == primary["bootstrap"]["p_value"]
    assert stored[3].evidence["per_group"]["1"]["rows"] > 0
    mv = registry().get_model_version("fraud", challenger.version)
    assert mv.tags[GATES_TAG] == "passed" and mv.tags[GATES_REASONS_TAG] == ""
    assert require_gates_passed("fraud", challenger.version).evaluation_id == evaluation
    from loopstack.store import open_stores

    events = [e for e in _audit(open_stores()) if e["action"] == "gates.evaluate"]
    assert events and events[-1]["object_id"] == f"fraud/{challenger.version}"


def _audit(stores: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from loopstack.store.metadata.schema import AuditEvent

    rows = stores.db.read(lambda c: list(c.execute(select(AuditEvent.__table__))))
    return [dict(r._mapping) for r in rows]


def _only(primary: MetricThreshold, **kwargs: Any) -> Gates:
    """Gates with just the metric gates asked for (no data or lineage gate)."""
    return Gates(
        primary=primary,
        require_validation=False,
        require_lineage=False,
        n_bootstrap=500,
        **kwargs,
    )


def test_a_challenger_better_only_by_noise_fails_the_significance_check(
    use_db: str, holdout: pd.DataFrame
) -> None:
    champion, challenger = register("boosted"), register("boosted_s1")
    gates = _only(MetricThreshold("roc_auc", min_improvement=0.0))
    report = evaluate_gates(gates, challenger, champion, data=holdout)
    result = report.get("primary:roc_auc")
    # the retrained copy is ahead on this evaluation set, by a hair...
    assert 0 < result.evidence["delta"] < 0.005
    # ...which the paired bootstrap finds within noise
    assert not result.passed and not report.passed
    assert result.evidence["bootstrap"]["p_value"] > 0.05
    assert result.evidence["bootstrap"]["ci"][0] < 0 < result.evidence["bootstrap"]["ci"][1]
    assert "not significant" in result.reason
    # without the significance check the same hair would have promoted it
    loose = _only(MetricThreshold("roc_auc", min_improvement=0.0), significance=None)
    assert evaluate_gates(loose, challenger, champion, data=holdout).passed


def test_guardrails_per_slice_fail_a_challenger_that_is_better_where_the_primary_looks(
    use_db: str, holdout: pd.DataFrame
) -> None:
    champion, challenger = register("linear"), register("region0_only")
    gates = _only(
        MetricThreshold("accuracy", min_improvement=0.02, slice={"region": 0}),
        guardrails=[
            MetricThreshold("accuracy", max_regression=0.05, slice={"region": 1}),
            MetricThreshold("log_loss", max_regression=0.05),
            MetricThreshold("roc_auc", min_value=0.5),
        ],
    )
    report = evaluate_gates(gates, challenger.uri, champion.uri, data=holdout)
    primary = report.get("primary:accuracy[region=0]")
    assert primary.passed, primary.reason
    assert primary.evidence["rows"] == int((holdout["region"] == 0).sum())
    slice1 = report.get("guardrail:accuracy[region=1]")
    assert not slice1.passed
    assert slice1.evidence["delta"] < -0.05
    assert "< required -0.05" in slice1.reason
    loss = report.get("guardrail:log_loss")
    assert not loss.passed and loss.evidence["value"] > loss.evidence["champion"] + 0.05
    assert report.get("guardrail:roc_auc").passed
    assert [r.split(":")[0] for r in report.failed_reasons()] == ["guardrail", "guardrail"]
    assert "FAILED 2 of 4 gates" in report.render()


def test_fairness_gap_and_floor(use_db: str, holdout: pd.DataFrame) -> None:
    biased, fair = register("region0_only"), register("boosted")
    gates = _only(
        MetricThreshold("accuracy", max_regression=1.0),
        fairness=Fairness("accuracy", group="region", max_gap=0.1, floor=0.6),
        significance=None,
    )
    result = evaluate_gates(gates, biased, data=holdout).get("fairness:accuracy by region")
    assert not result.passed
    groups = result.evidence["per_group"]
    assert groups["0"]["value"] - groups["1"]["value"] > 0.3
    assert "> max_gap 0.1" in result.reason
    assert "region=1" in result.reason and "below the floor 0.6" in result.reason
    ok = evaluate_gates(gates, fair, data=holdout).get("fairness:accuracy by region")
    assert ok.passed, ok.reason
    strict = _only(
        MetricThreshold("accuracy", max_regression=1.0),
        fairness=Fairness("accuracy", group="region", max_gap=0.1, floor=0.9),
    )
    floor = evaluate_gates(strict, fair, data=holdout).get("fairness:accuracy by region")
    assert not floor.passed and "max_gap" not in floor.reason
    assert "below the floor 0.9" in floor.reason
    declared = _only(
        MetricThreshold("accuracy", max_regression=1.0),
        fairness=Fairness("accuracy", group="region", max_gap=0.1, groups=[0, 1, 2]),
    )
    missing = evaluate_gates(declared, fair, data=holdout).get("fairness:accuracy by region")
    assert not missing.passed and "group '2' has no rows" in missing.reason


def test_without_a_champion_change_thresholds_are_skipped_and_values_still_apply(
    use_db: str, holdout: pd.DataFrame
) -> None:
    challenger = register("boosted")
    low = _only(MetricThreshold("accuracy", min_value=0.8, min_improvement=0.05))
    report = evaluate_gates(low, challenger, data=holdout)
    result = report.get("primary:accuracy")
    assert result.passed and "no champion: change thresholds skipped" in result.reason
    assert result.evidence["champion"] is None and "bootstrap" not in result.evidence
    assert report.champion is None
    high = _only(MetricThreshold("accuracy", min_value=0.95, min_improvement=0.05))
    failed = evaluate_gates(high, challenger, data=holdout).get("primary:accuracy")
    assert not failed.passed and "< min 0.95" in failed.reason


def test_lineage_incomplete_fails(train_set: Any, holdout: pd.DataFrame) -> None:
    gates = Gates(primary=MetricThreshold("accuracy", max_regression=1.0), require_validation=False)
    no_inputs = register("boosted")
    result = evaluate_gates(gates, no_inputs, data=holdout).get("lineage")
    assert not result.passed and "logged no dataset inputs" in result.reason
    loaded = evaluate_gates(gates, trained()["boosted"], data=holdout).get("lineage")
    assert not loaded.passed and "not a registered model version" in loaded.reason
    complete = register("boosted", trained_on=train_set)
    ok = evaluate_gates(gates, complete, data=holdout).get("lineage")
    assert ok.passed and ok.evidence["datasets"] == ["dataset_version:train/1"]


def test_data_validation_gate(use_db: str, holdout: pd.DataFrame) -> None:
    gates = Gates(primary=MetricThreshold("accuracy", max_regression=1.0), require_lineage=False)
    challenger = register("boosted")
    dv = ls.register_dataset("holdout", holdout)
    never = evaluate_gates(gates, challenger, data=holdout, dataset_version=dv)
    assert "has no validation result" in never.get("data_validation").reason
    strict = Suite("strict", [{"type": "range", "column": "x0", "min": 0}])
    assert not strict.validate(dv).passed
    failed = evaluate_gates(gates, challenger, data=holdout, dataset_version="holdout/1")
    result = failed.get("data_validation")
    assert not result.passed and not failed.passed
    assert "suite 'strict' failed 1 of 1 checks: range(x0)" in result.reason
    assert result.evidence["failures"][0]["check"] == "range(x0)"
    # a suite given to the gate is run (and recorded) there and then
    loose = Suite("loose", [{"type": "range", "column": "x0", "min": -100}])
    ran = evaluate_gates(gates, challenger, data=holdout, dataset_version=dv, suite=loose)
    assert ran.get("data_validation").passed and ran.get("data_validation").evidence["result_id"]
    latest = evaluate_gates(gates, challenger, data=holdout, dataset_version=dv)
    assert latest.get("data_validation").passed  # the newest result is the loose one
    none = evaluate_gates(gates, challenger, data=holdout)
    assert "no dataset_version or suite" in none.get("data_validation").reason


def test_failed_gates_are_tagged_and_refuse_a_rollout(use_db: str, holdout: pd.DataFrame) -> None:
    champion, challenger = register("linear"), register("region0_only")
    with pytest.raises(GateFailed, match="has no gate results"):
        require_gates_passed("fraud", challenger.version)
    with pytest.raises(NotFound):
        require_gates_passed("fraud", 99)
    gates = _only(
        MetricThreshold("accuracy", min_improvement=0.02),
        fairness=Fairness("accuracy", group="region", max_gap=0.1),
    )
    report = evaluate_gates(gates, challenger, champion, data=holdout)
    assert not report.passed
    record_gates(report, "fraud", challenger.version)
    mv = registry().get_model_version("fraud", challenger.version)
    assert mv.tags[GATES_TAG] == "failed"
    assert mv.tags[GATES_REASONS_TAG] == "; ".join(report.failed_reasons())
    with pytest.raises(GateFailed) as err:
        require_gates_passed("fraud", challenger.version)
    assert err.value.status_code == 409
    assert "failed 2 of 2 gates" in err.value.message
    assert "primary:accuracy:" in err.value.message
    assert "fairness:accuracy by region:" in err.value.message
    # a later evaluation replaces the earlier one as the version's outcome
    lenient = _only(MetricThreshold("accuracy", max_regression=0.5), significance=None)
    record_gates(evaluate_gates(lenient, challenger, data=holdout), "fraud", challenger.version)
    assert [r.gate for r in gate_results("fraud", challenger.version)] == ["primary:accuracy"]
    assert require_gates_passed("fraud", challenger.version).passed
    tags = registry().get_model_version("fraud", challenger.version).tags
    assert tags[GATES_TAG] == "passed" and tags[GATES_REASONS_TAG] == ""


def test_regression_gates_with_relative_change(use_db: str) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    frame["y"] = 3 * frame["a"] - 2 * frame["b"] + 0.3 * rng.normal(size=600) + 10
    train, test = frame.iloc[:400], frame.iloc[400:]
    with ls.start_run(experiment="gates") as run:
        weak = run.log_model(
            LinearRegression().fit(train[["a"]], train["y"]),
            name="price",
            artifact_path="weak",
            sample_input=train[["a"]].head(3),
        )
        strong = run.log_model(
            LinearRegression().fit(train[["a", "b", "c"]], train["y"]),
            name="price",
            artifact_path="strong",
            sample_input=train[["a", "b", "c"]].head(3),
        )
    gates = _only(
        MetricThreshold("rmse", min_improvement=0.5, relative=True),
        guardrails=[MetricThreshold("mape", max_value=0.1)],
    )
    report = evaluate_gates(gates, "models:/price/2", "models:/price/1", data=test)
    assert report.passed, report.failed_reasons()
    rmse = report.get("primary:rmse").evidence
    assert rmse["value"] < rmse["champion"]
    assert rmse["relative_delta"] == pytest.approx(
        (rmse["champion"] - rmse["value"]) / rmse["champion"]
    )
    backwards = evaluate_gates(gates, weak, strong, data=test).get("primary:rmse")
    assert not backwards.passed and backwards.evidence["delta"] < 0


def test_bad_evaluation_input_is_refused(use_db: str, holdout: pd.DataFrame) -> None:
    challenger = register("boosted")
    gates = _only(MetricThreshold("accuracy", max_regression=0.1))
    with pytest.raises(Invalid, match="label column 'label'"):
        evaluate_gates(gates, challenger, data=holdout, label="label")
    gappy = holdout.astype({"y": "float64"})
    gappy.loc[[3, 7], "y"] = np.nan
    with pytest.raises(Invalid, match="2 of 800 rows have no 'y'"):
        evaluate_gates(gates, challenger, data=gappy)
    with pytest.raises(Invalid, match="model URI like"):
        evaluate_gates(gates, "fraud/1", data=holdout)
    with pytest.raises(NotFound):
        evaluate_gates(gates, "models:/fraud/7", data=holdout)
    sliced = _only(MetricThreshold("accuracy", max_regression=0.1, slice={"country": "fr"}))
    result = evaluate_gates(sliced, challenger, data=holdout).results[0]
    assert not result.passed and "'country' is not in the evaluation set" in result.reason


def test_the_dataset_version_is_the_evaluation_set_and_reports_stay_on_their_version(
    use_db: str, validated: Any, holdout: pd.DataFrame
) -> None:
    first, second = register("linear"), register("boosted")
    gates = Gates(primary=MetricThreshold("accuracy", max_regression=0.5), require_lineage=False)
    by_version = evaluate_gates(gates, second, dataset_version="holdout/1")
    by_frame = evaluate_gates(gates, second, data=holdout, dataset_version=validated)
    by_object = evaluate_gates(gates, second, data=validated, dataset_version=validated)
    assert by_version.passed and by_frame.passed and by_object.passed
    assert GateReport.from_dict(by_object.to_dict()) == by_object
    assert by_version.get("primary:accuracy").evidence == by_frame.get("primary:accuracy").evidence
    with pytest.raises(Invalid, match="an evaluation set is needed"):
        evaluate_gates(gates, second)
    with pytest.raises(Invalid, match="cannot be recorded on models:/fraud/1"):
        record_gates(by_version, "fraud", first.version)
    assert gate_results("fraud", first.version) == []


def test_gate_version_compares_with_the_alias_and_records_the_outcome(
    use_db: str, holdout: pd.DataFrame
) -> None:
    from loopstack.loop import gate_version

    gates = _only(MetricThreshold("accuracy", min_improvement=0.02))
    first = register("linear")
    # no version holds the alias yet: change thresholds are skipped, the outcome recorded
    alone = gate_version(gates, "fraud", first.version, champion_alias="champion", data=holdout)
    assert alone.passed and alone.champion is None
    registry().set_alias("fraud", "champion", first.version)
    itself = gate_version(gates, "fraud", first.version, champion_alias="champion", data=holdout)
    assert itself.champion is None  # a version is not its own champion
    worse = register("region0_only")
    report = gate_version(gates, "fraud", worse.version, champion_alias="champion", data=holdout)
    assert report.champion == first.uri and not report.passed
    with pytest.raises(GateFailed, match=r"models:/fraud/2 failed 1 of 1 gates: primary:accuracy"):
        report.raise_for_failures()
    assert registry().get_model_version("fraud", worse.version).tags[GATES_TAG] == "failed"
    better = register("boosted")
    ok = gate_version(gates, "fraud", better.version, champion_alias="champion", data=holdout)
    assert ok.raise_for_failures() is ok
    assert require_gates_passed("fraud", better.version).champion == first.uri
