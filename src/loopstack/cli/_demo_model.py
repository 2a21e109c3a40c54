"""The quickstart's demo: a logistic regression trained by gradient descent in plain numpy.

No scikit-learn (it is not a loopstack dependency); seeded, so every quickstart logs the same
numbers. Everything is logged through the fluent API to whatever tracking URI is configured.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoResult", "EXPERIMENT", "train_and_log"]

EXPERIMENT = "quickstart"
FEATURES = ["tenure", "monthly_spend", "support_calls", "logins", "discount", "age"]


@dataclass(frozen=True)
class DemoResult:
    run_id: str
    experiment_id: str
    params: dict[str, Any]
    metrics: dict[str, float]
    artifacts: list[str]


def _make_data(seed: int, n: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    true_w = np.array([-1.2, 0.8, 1.5, -0.9, 0.3, 0.0])
    logits = X @ true_w - 0.3 + rng.normal(scale=0.7, size=n)
    return X, (logits > 0).astype(np.float64)


def _sigmoid(z: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _log_loss(p: Any, y: Any) -> float:
    import numpy as np

    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_and_log(
    *,
    epochs: int = 30,
    lr: float = 0.5,
    batch_size: int = 128,
    l2: float = 1e-3,
    seed: int = 42,
    n_samples: int = 2000,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> DemoResult:
    """Train, logging params, per-epoch metrics, the dataset and the model; returns the run."""
    import numpy as np
    import pandas as pd

    import loopstack as ls

    X, y = _make_data(seed, n_samples)
    cut = int(0.8 * n_samples)
    X_train, y_train, X_val, y_val = X[:cut], y[:cut], X[cut:], y[cut:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    Xt, Xv = (X_train - mean) / std, (X_val - mean) / std
    params: dict[str, Any] = {
        "model": "logistic_regression",
        "optimizer": "minibatch_sgd",
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        "l2": l2,
        "seed": seed,
        "n_samples": n_samples,
        "n_features": len(FEATURES),
    }
    rng = np.random.default_rng(seed + 1)
    w, b = np.zeros(len(FEATURES)), 0.0
    metrics: dict[str, float] = {}
    with ls.start_run(
        experiment=EXPERIMENT,
        run_name="logreg-demo",
        params=params,
        tags={"loopstack.quickstart": "true"},
    ) as run:
        train_frame = pd.DataFrame(X_train, columns=FEATURES).assign(churned=y_train)
        run.log_input(train_frame, name="churn-demo-train", context="training")
        run.log_input(
            pd.DataFrame(X_val, columns=FEATURES).assign(churned=y_val),
            name="churn-demo-validation",
            context="validation",
        )
        for epoch in range(epochs):
            order = rng.permutation(len(Xt))
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                err = _sigmoid(Xt[idx] @ w + b) - y_train[idx]
                w -= lr * (Xt[idx].T @ err / len(idx) + l2 * w)
                b -= lr * float(err.mean())
            p_train, p_val = _sigmoid(Xt @ w + b), _sigmoid(Xv @ w + b)
            metrics = {
                "loss": _log_loss(p_train, y_train),
                "accuracy": float(((p_train > 0.5) == y_train).mean()),
                "val_loss": _log_loss(p_val, y_val),
                "val_accuracy": float(((p_val > 0.5) == y_val).mean()),
            }
            run.log_metrics(metrics, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
        pred = _sigmoid(Xv @ w + b) > 0.5
        pos, neg = y_val == 1, y_val == 0
        confusion = {
            "tp": int((pred & pos).sum()),
            "fp": int((pred & neg).sum()),
            "tn": int((~pred & neg).sum()),
            "fn": int((~pred & pos).sum()),
        }
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            model_dir.mkdir()
            (model_dir / "weights.json").write_text(
                json.dumps(
                    {
                        "features": FEATURES,
                        "weights": dict(zip(FEATURES, w.tolist(), strict=True)),
                        "bias": b,
                        "standardize": {"mean": mean.tolist(), "std": std.tolist()},
                        "predict": "sigmoid(((x - mean) / std) @ weights + bias) > 0.5",
                    },
                    indent=2,
                )
            )
            report = Path(tmp) / "report.json"
            report.write_text(
                json.dumps(
                    {"final_metrics": metrics, "confusion_matrix": confusion, "params": params},
                    indent=2,
                )
            )
            run.log_artifact(model_dir)
            run.log_artifact(report)
    return DemoResult(
        run.run_id, run.experiment_id, params, metrics, ["model/weights.json", "report.json"]
    )
