"""The metrics a gate may name, their direction, and their value over weighted rows.

A point value comes from ``loopstack.monitoring._metrics`` (the same numbers monitoring
reports, which agree with scikit-learn's). The bootstrap needs the same metric over many
resamples at once: ``weighted`` takes a ``(B, n)`` matrix of how often each row was
drawn and returns the ``B`` values in one vectorised pass (a row of ones gives the point
value back, a test says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BOUNDED",
    "CLASSIFICATION",
    "METRICS",
    "REGRESSION",
    "Predictions",
    "point",
    "task_of",
    "weighted",
]

#: classification metrics -> higher is better
CLASSIFICATION = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
}
#: regression metrics -> higher is better
REGRESSION = {"mae": False, "rmse": False, "mape": False}
METRICS = {**CLASSIFICATION, **REGRESSION}
#: metrics whose values lie in [0, 1]
BOUNDED = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"})


def task_of(metric: str) -> str:
    """``"classification"`` or ``"regression"``: the kind of model ``metric`` measures."""
    return "classification" if metric in CLASSIFICATION else "regression"


@dataclass(frozen=True)
class Predictions:
    """What one model said about the evaluation rows, beside the labels."""

    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None = None  #: columns in ``classes`` order
    classes: tuple[Any, ...] = ()
    positive: Any = None
    #: score column -> (row order, tie-run starts), filled by the first ROC AUC
    _rankings: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def subset(self, mask: np.ndarray) -> Predictions:
        """The same predictions for the rows where ``mask`` is true."""
        return Predictions(
            self.y[mask],
            self.pred[mask],
            None if self.proba is None else self.proba[mask],
            self.classes,
            self.positive,
        )

    @property
    def pos(self) -> Any:
        return self.classes[1] if self.positive is None else self.positive


def point(metric: str, p: Predictions) -> float | None:
    """The value of ``metric`` over every row (None when it cannot be computed)."""
    from loopstack.monitoring._metrics import classification_metrics, regression_metrics

    if metric in REGRESSION:
        y = p.y.astype(np.float64)
        value = regression_metrics(y, p.pred.astype(np.float64))[metric]
    else:
        value = classification_metrics(p.y, p.pred, p.proba, list(p.classes), p.positive)[metric]
    return None if value is None else float(value)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=np.float64)
    np.divide(a, b, out=out, where=b != 0)
    return out


def weighted(metric: str, w: np.ndarray, p: Predictions) -> np.ndarray:
    """``metric`` under each row of weights ``w`` (shape ``(B, n)``): shape ``(B,)``,
    NaN where it is undefined (no positives in a resample for ROC AUC, say)."""
    if metric in REGRESSION:
        return _regression(metric, w, p.y.astype(np.float64), p.pred.astype(np.float64))
    n = w.sum(axis=1)
    if metric == "accuracy":
        return _div(w @ (p.y == p.pred).astype(np.float64), n)
    if metric in ("precision", "recall", "f1"):
        return _prf(metric, w, p)
    if p.proba is None or p.proba.shape[1] != len(p.classes):
        return np.full(w.shape[0], np.nan)
    if metric == "roc_auc":
        return _roc_auc(w, p)
    return _log_loss(w, p)


def _regression(metric: str, w: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    err = pred - y
    n = w.sum(axis=1)
    if metric == "mae":
        return _div(w @ np.abs(err), n)
    if metric == "rmse":
        return np.sqrt(_div(w @ (err**2), n))
    nonzero = y != 0
    ratio = np.zeros_like(err)
    ratio[nonzero] = np.abs(err[nonzero] / y[nonzero])
    kept = w @ nonzero.astype(np.float64)
    out = np.full(w.shape[0], np.nan)
    np.divide(w @ ratio, kept, out=out, where=kept != 0)
    return out


def _counts(w: np.ndarray, p: Predictions, c: Any) -> tuple[np.ndarray, ...]:
    hit, said, true = (p.pred == c) & (p.y == c), p.pred == c, p.y == c
    return tuple(w @ m.astype(np.float64) for m in (hit, said, true))


def _prf(metric: str, w: np.ndarray, p: Predictions) -> np.ndarray:
    def one(tp: np.ndarray, said: np.ndarray, true: np.ndarray) -> np.ndarray:
        prec, rec = _div(tp, said), _div(tp, true)
        if metric == "precision":
            return prec
        if metric == "recall":
            return rec
        return _div(2 * prec * rec, prec + rec)

    if len(p.classes) == 2:
        return one(*_counts(w, p, p.pos))
    total = np.zeros(w.shape[0])
    seen = np.zeros(w.shape[0])
    for c in p.classes:
        tp, said, true = _counts(w, p, c)
        present = (said + true) > 0
        total += np.where(present, one(tp, said, true), 0.0)
        seen += present
    return _div(total, seen)


def _ranking(p: Predictions, col: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows in order of column ``col``'s score, and where each run of tied scores
    starts: sorted once per model, not once per block of resamples."""
    cached = p._rankings.get(col)
    if cached is None:
        assert p.proba is not None
        score = p.proba[:, col]
        order = np.argsort(score, kind="mergesort")
        ranked = score[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        cached = p._rankings[col] = (order, starts)
    return cached


def _auc(w: np.ndarray, positive: np.ndarray, ranking: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Weighted Mann-Whitney AUC (ties count half), one per row of ``w``."""
    order, starts = ranking
    ws = w[:, order]
    pos_w = ws * positive[order].astype(np.float64)
    if starts.size == order.size:  # no ties: each row is its own group
        pos_g, all_g = pos_w, ws
    else:
        pos_g = np.add.reduceat(pos_w, starts, axis=1)
        all_g = np.add.reduceat(ws, starts, axis=1)
    neg_g = all_g - pos_g
    below = np.cumsum(neg_g, axis=1) - neg_g
    num = (pos_g * (below + 0.5 * neg_g)).sum(axis=1)
    pairs = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    out = np.full(w.shape[0], np.nan)
    np.divide(num, pairs, out=out, where=pairs != 0)
    return out


def _roc_auc(w: np.ndarray, p: Predictions) -> np.ndarray:
    assert p.proba is not None
    if len(p.classes) == 2:
        col = list(p.classes).index(p.pos)
        return _auc(w, p.y == p.pos, _ranking(p, col))
    aucs = np.stack([_auc(w, p.y == c, _ranking(p, i)) for i, c in enumerate(p.classes)])
    return aucs.mean(axis=0)  # NaN when any class is undefined, as monitoring says None


def _log_loss(w: np.ndarray, p: Predictions) -> np.ndarray:
    assert p.proba is not None
    index = {c: i for i, c in enumerate(p.classes)}
    cols = np.array([index.get(v, -1) for v in p.y.tolist()])
    if not np.all(cols >= 0):
        return np.full(w.shape[0], np.nan)
    eps = np.finfo(np.float64).eps
    prob = np.clip(p.proba.astype(np.float64), eps, 1 - eps)
    prob = prob / prob.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(cols.size), cols])
    return _div(w @ loss, w.sum(axis=1))
