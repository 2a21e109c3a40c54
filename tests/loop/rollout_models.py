"""What the rollout tests roll out: versions of a registered iris model on an endpoint
(a module of its own, not a conftest, so the loop's other tests keep theirs)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.registry import SqlRegistry
from loopstack.serving import SqlDeployments
from loopstack.store import Stores, open_stores


class SlowModel:
    """A model that answers as ``inner`` does, ``delay_s`` later (breaks latency)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s

    def predict(self, X: Any) -> Any:
        time.sleep(self.delay_s)
        return self.inner.predict(X)


@dataclass
class Models:
    stores: Stores
    frame: pd.DataFrame
    y: np.ndarray
    endpoint: str = "iris-api"


def log_versions(*extra: Any) -> Models:
    """iris v1 (the champion, holding ``production``, deployed on ``iris-api``), v2 (a good
    candidate), then one version per ``extra`` model."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = pd.DataFrame(X)
    with ls.start_run(experiment="rollouts") as run:
        for i, model in enumerate(
            [
                LogisticRegression(C=1.0, max_iter=300).fit(frame, y),
                LogisticRegression(C=0.5, max_iter=300).fit(frame, y),
                *extra,
            ]
        ):
            run.log_model(model, name="iris", artifact_path=f"m{i}", sample_input=frame.head(3))
    stores = open_stores()
    SqlRegistry(stores, actor="root").set_alias("iris", "production", 1, override=True)
    SqlDeployments(stores, actor="root").create("iris-api", "iris@production")
    models = Models(stores, frame, np.asarray(y))
    for version in range(2, 3 + len(extra)):  # each candidate passed its gates
        record_real_gates(models, version)
    return models


def record_real_gates(m: Models, version: int, *, min_accuracy: float = 0.8) -> Any:
    """Evaluate the version's gates on iris (accuracy at least ``min_accuracy``) and
    record them on it, as a loop's gate step does; the report."""
    from loopstack.loop import Gates, MetricThreshold, gate_version

    gates = Gates(
        primary=MetricThreshold("accuracy", min_value=min_accuracy, max_regression=0.05),
        require_validation=False,
        require_lineage=False,
    )
    data = m.frame.assign(y=m.y)
    return gate_version(gates, "iris", version, champion_alias=None, data=data, stores=m.stores)


def three_versions() -> Models:
    """v1 champion and v2 candidate, plus v3: v2 answering 0.3 s late."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    slow = SlowModel(LogisticRegression(C=0.5, max_iter=300).fit(X, y), 0.3)
    return log_versions(slow)


def against_the_champion(m: Models, version: int) -> Any:
    """Record v``version``'s gates against v1 (production), by ``alice``: accuracy may
    lose at most 0.05 (a paired bootstrap says whether the change is noise), a guardrail
    on accuracy of at least 0.995, and fairness across two flower sizes; the report."""
    from loopstack.loop import Fairness, Gates, MetricThreshold, gate_version

    gates = Gates(
        primary=MetricThreshold("accuracy", max_regression=0.05),
        guardrails=[MetricThreshold("accuracy", min_value=0.995)],
        fairness=Fairness("accuracy", group="size", max_gap=0.5, floor=0.5),
        n_bootstrap=300,
        require_validation=False,
        require_lineage=False,
    )
    size = (m.frame["sepal length (cm)"] > 5.8).map({True: "large", False: "small"})
    data = m.frame.assign(y=m.y, size=size)
    return gate_version(gates, "iris", version, data=data, stores=m.stores, actor="alice")


def gated_versions() -> Models:
    """iris v1 (production, no gates recorded), v2 (its gates passed) and v3, a better
    model whose gates against v1 were recorded with one of three failed (the guardrail)."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    m = log_versions(LogisticRegression(C=2.0, max_iter=300).fit(X, y))
    report = against_the_champion(m, 3)
    assert not report.passed and [r.gate for r in report.failed] == ["guardrail:accuracy"]
    return m
