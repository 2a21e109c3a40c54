"""The demo's retraining pipeline: the warehouse's labelled transactions -> a point-in-time
training set from the feature store -> a new model version -> its gates against the
champion -> a canary rollout that waits for a human's approval.

The demo's triggers name it as ``loopstack.demo._pipeline:retraining``; its params say
which features the new version reads and how its rollout goes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import loopstack as ls

__all__ = ["GATES", "KEYS", "LABEL", "LABEL_ROWS", "retraining", "suite", "train_model"]

LABEL = "is_fraud"
KEYS = ["customer_id", "merchant_id", "event_timestamp"]
#: the columns a label row carries besides the keys (the request values, the label, the
#: sensitive attribute the fairness gate groups by)
LABEL_ROWS = [*KEYS, "amount", "hour", "is_foreign", "age_band", LABEL]
#: how a challenger must beat the champion, as the gate step declares it
GATES = {
    "primary": {"metric": "roc_auc", "min_improvement": 0.02},
    "guardrails": [{"metric": "recall", "max_regression": 0.05}],
    "fairness": {"metric": "recall", "group": "age_band", "max_gap": 0.35, "floor": 0.5},
}


def suite() -> Any:
    """The checks every batch of transactions must pass before it trains a model."""
    from loopstack.data import Suite

    checks: list[Any] = [  # check documents, as a suite file holds them
        {"type": "schema", "columns": {"customer_id": "int64", "merchant_id": "int64"}},
        *({"type": "null_rate", "column": c, "max": 0.0} for c in LABEL_ROWS),
        {"type": "range", "column": "amount", "min": 0, "min_inclusive": False},
        {"type": "range", "column": "hour", "min": 0, "max": 23},
        {"type": "allowed_values", "column": "is_foreign", "values": [0, 1]},
        {"type": "allowed_values", "column": LABEL, "values": [0, 1]},
        {"type": "allowed_values", "column": "age_band", "values": ["18-29", "30-49", "50+"]},
    ]
    return Suite("transactions", checks)


def train_model(rows: pd.DataFrame, columns: list[str], recent_after: Any = None) -> Any:
    """A HistGradientBoosting classifier on ``columns`` of ``rows``, classes balanced, rows
    after ``recent_after`` (a timestamp) weighted twenty times (the world has moved)."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    weight = compute_sample_weight("balanced", rows[LABEL])
    if recent_after is not None:
        weight = weight * np.where(rows["event_timestamp"] > recent_after, 20.0, 1.0)
    model = HistGradientBoostingClassifier(max_iter=150, random_state=0)
    return model.fit(rows[columns], rows[LABEL], sample_weight=weight)


def model_columns(features: list[str]) -> list[str]:
    """The model's input columns: the request values, then each feature by its name."""
    return ["amount", "hour", "is_foreign", *(f.split(":", 1)[1] for f in features)]


@ls.step(cache=False, outputs=("train_rows", "eval_rows"))  # reads the live warehouse
def labelled(
    warehouse: str, recent_after: str, holdout: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The warehouse's labelled transactions, registered and validated as a dataset
    version; the newest ``holdout`` share of the rows after ``recent_after`` (at most
    1,200) kept apart to judge the challenger on: the world as it is now."""
    rows = pd.read_parquet(warehouse, columns=LABEL_ROWS).sort_values("event_timestamp")
    rows = rows.reset_index(drop=True)
    version = ls.register_dataset("transactions", rows)
    suite().validate(version).raise_for_failures()
    recent = int((rows["event_timestamp"] > pd.Timestamp(recent_after)).sum())
    n = max(1, min(1200, int(recent * holdout)))
    return rows.iloc[:-n].reset_index(drop=True), rows.iloc[-n:].reset_index(drop=True)


@ls.step
def retrain(train_rows: pd.DataFrame, features: list[str], model: str, recent_after: str) -> int:
    """A new version of ``model``: a point-in-time training set of ``features`` for the
    rows, a fit, the version registered with its training set (lineage)."""
    store = ls.FeatureStore()
    columns = model_columns(features)
    with ls.start_run(experiment="fraud-retraining") as run:
        data = store.get_historical_features(train_rows, features, register_as="fraud-training")
        fitted = train_model(data, columns, pd.Timestamp(recent_after))
        run.log_params({"features": ",".join(columns), "rows": len(data)})
        mv = run.log_model(
            fitted, name=model, artifact_path="model", sample_input=data[columns][:5]
        )
    return int(mv.version)


@ls.step
def gate(version: int, eval_rows: pd.DataFrame, features: list[str], model: str) -> dict:
    """The challenger against the champion on the newest labelled rows, the outcome
    recorded with the version; a failed gate stops the pipeline (``GateFailed``)."""
    from loopstack.loop import Gates, evaluate_gates, record_gates, require_gates_passed

    data = ls.FeatureStore().get_historical_features(
        eval_rows, features, register_as="fraud-evaluation"
    )
    evaluation = ls.get_dataset("fraud-evaluation")
    gates = Gates.from_dict({**GATES, "n_bootstrap": 500})
    report = evaluate_gates(
        gates,
        f"models:/{model}/{version}",
        f"models:/{model}@production",
        data=data,
        label=LABEL,
        dataset_version=evaluation,
        suite=suite(),
    )
    record_gates(report, model, version)
    require_gates_passed(model, version)
    return {"version": version, "passed": report.passed}


@ls.step
def roll_out(gated: dict, endpoint: str, model: str, plan: dict) -> int:
    """The gated version's canary rollout, started; it waits for a human's approval."""
    from loopstack.loop import RolloutPlan, Rollouts
    from loopstack.store import open_stores

    started = Rollouts(open_stores(), actor="loop").start(
        endpoint, model, gated["version"], RolloutPlan.from_dict(plan), evidence=gated
    )
    return int(started.rollout_id)


@ls.pipeline(name="fraud-retraining")
def retraining(
    warehouse: str = "",
    features: list | None = None,
    model: str = "fraud",
    endpoint: str = "fraud-api",
    recent_after: str = "",
    holdout: float = 0.35,
    plan: dict | None = None,
):
    """Retrain ``model`` on the warehouse's labelled transactions, gate, roll out."""
    train_rows, eval_rows = labelled(
        warehouse=warehouse, recent_after=recent_after, holdout=holdout
    )
    version = retrain(train_rows, features=features, model=model, recent_after=recent_after)
    gated = gate(version, eval_rows, features=features, model=model)
    roll_out(gated, endpoint=endpoint, model=model, plan=plan)
