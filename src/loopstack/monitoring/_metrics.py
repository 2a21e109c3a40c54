"""Classification and regression metrics in NumPy (no scikit-learn at run time); the
values agree with scikit-learn's (``zero_division=0``, macro averages over the classes
seen in labels or predictions, one-vs-rest macro ROC AUC)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "rank_auc", "regression_metrics"]


def _div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def _f1(p: float, r: float) -> float:
    return _div(2 * p * r, p + r)


def rank_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of boolean ``y`` against ``score`` (Mann-Whitney, ties averaged); None
    unless both classes occur."""
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average ranks over ties
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def classification_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any],
    positive: Any | None,
) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 (of ``positive`` for two classes, else macro),
    ROC AUC and log loss (when ``proba``, columns in ``classes`` order, is given)."""
    out: dict[str, float | None] = {"accuracy": float(np.mean(y == pred)) if y.size else None}
    if not y.size:
        return {
            **out,
            "precision": None,
            "recall": None,
            "f1": None,
            "roc_auc": None,
            "log_loss": None,
        }
    binary = len(classes) == 2
    if binary:
        pos = classes[1] if positive is None else positive
        tp = float(np.sum((pred == pos) & (y == pos)))
        fp = float(np.sum((pred == pos) & (y != pos)))
        fn = float(np.sum((pred != pos) & (y == pos)))
        p, r = _div(tp, tp + fp), _div(tp, tp + fn)
        out.update(precision=p, recall=r, f1=_f1(p, r))
    else:
        seen = [c for c in classes if np.any(y == c) or np.any(pred == c)]
        ps, rs, fs = [], [], []
        for c in seen:
            tp = float(np.sum((pred == c) & (y == c)))
            p = _div(tp, float(np.sum(pred == c)))
            r = _div(tp, float(np.sum(y == c)))
            ps.append(p)
            rs.append(r)
            fs.append(_f1(p, r))
        out.update(precision=float(np.mean(ps)), recall=float(np.mean(rs)), f1=float(np.mean(fs)))
    out["roc_auc"] = out["log_loss"] = None
    if proba is not None and proba.shape[1] == len(classes):
        if binary:
            pos = classes[1] if positive is None else positive
            col = classes.index(pos)
            out["roc_auc"] = rank_auc(y == pos, proba[:, col])
        else:
            aucs = [rank_auc(y == c, proba[:, i]) for i, c in enumerate(classes)]
            ok = [a for a in aucs if a is not None]
            out["roc_auc"] = float(np.mean(ok)) if len(ok) == len(classes) else None
        index = {c: i for i, c in enumerate(classes)}
        cols = np.array([index.get(v, -1) for v in y.tolist()])
        if np.all(cols >= 0):
            eps = np.finfo(np.float64).eps
            p = np.clip(proba, eps, 1 - eps)
            p = p / p.sum(axis=1, keepdims=True)
            out["log_loss"] = float(-np.mean(np.log(p[np.arange(y.size), cols])))
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float | int | None]:
    """MAE, RMSE and MAPE (rows with a zero label are left out of MAPE and counted in
    ``mape_skipped``)."""
    if not y.size:
        return {"mae": None, "rmse": None, "mape": None, "mape_skipped": 0}
    err = pred - y
    nonzero = y != 0
    mape = float(np.mean(np.abs(err[nonzero] / y[nonzero]))) if nonzero.any() else None
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": math.sqrt(float(np.mean(err**2))),
        "mape": mape,
        "mape_skipped": int((~nonzero).sum()),
    }
