"""Estimated performance before labels arrive: confidence-based performance estimation
(CBPE). The model's probabilities, recalibrated on a labelled reference period when one
is given, are taken as the chance of each label; the expected confusion matrix gives
expected accuracy, precision, recall, F1 and ROC AUC per window.

The interval is the central ``level`` range of the metric over ``n_samples`` label sets
drawn from the calibrated probabilities (the label noise a window of that size has; the
error of the calibration itself is not in it). Once labels come, ``compare`` tells per
window whether the realised value lies inside. Under concept drift the probabilities no
longer say how likely each label is, and estimate and realised part: that is the signal.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import Invalid
from loopstack.monitoring._performance import (
    PerformanceReport,
    WindowRows,
    infer_classes,
    proba_columns,
    render_table,
    window_starts,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EstimateReport", "estimate_performance", "isotonic_fit"]

ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")


def isotonic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A non-decreasing fit of ``y`` on ``x`` (pool adjacent violators): the knots
    ``(xs, fitted)`` to interpolate between (``np.interp`` clips at the ends)."""
    order = np.argsort(x, kind="mergesort")
    xs_all, ys = x[order], y[order].astype(np.float64)
    ux, start, counts = np.unique(xs_all, return_index=True, return_counts=True)
    sums = np.add.reduceat(ys, start)
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for s, w in zip(sums.tolist(), counts.tolist(), strict=True):
        m, wt, size = s / w, float(w), 1
        while means and means[-1] >= m:
            pm, pw, ps = means.pop(), weights.pop(), sizes.pop()
            m = (pm * pw + m * wt) / (pw + wt)
            wt += pw
            size += ps
        means.append(m)
        weights.append(wt)
        sizes.append(size)
    fitted = np.repeat(np.array(means), np.array(sizes))
    return ux, fitted


def platt_fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Platt scaling: ``a, b`` of ``sigmoid(a * logit(x) + b)`` fitted to ``y`` by
    Newton's method (with a tiny ridge so separable data stays finite)."""
    z = np.log(np.clip(x, 1e-12, 1 - 1e-12) / np.clip(1 - x, 1e-12, 1))
    design = np.column_stack([z, np.ones_like(z)])
    w = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(design @ w)))
        grad = design.T @ (p - y) + 1e-6 * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])


Calibrator = Callable[[np.ndarray], np.ndarray]


def _one_calibrator(x: np.ndarray, hit: np.ndarray, method: str) -> Calibrator:
    if method == "isotonic":
        xs, fitted = isotonic_fit(x, hit)
        return lambda v: np.interp(v, xs, fitted)
    a, b = platt_fit(x, hit.astype(np.float64))
    return lambda v: (
        1 / (1 + np.exp(-(a * np.log(np.clip(v, 1e-12, 1) / np.clip(1 - v, 1e-12, 1)) + b)))
    )


def _calibrators(
    ref: pd.DataFrame, classes: list[Any], probas: list[str], method: str
) -> list[Calibrator]:
    labelled = ref[ref["label"].notna()]
    if labelled.empty:
        raise Invalid("the calibration reference has no labelled rows", field="calibration")
    y = [int(v) if isinstance(v, float) and v.is_integer() else v for v in labelled["label"]]
    out = []
    for i, c in enumerate(classes):
        hit = np.array([v == c for v in y])
        out.append(_one_calibrator(labelled[probas[i]].to_numpy(dtype=np.float64), hit, method))
    return out


def _calibrated(raw: np.ndarray, cal: list[Calibrator] | None) -> np.ndarray:
    q = raw.copy() if cal is None else np.column_stack([f(raw[:, i]) for i, f in enumerate(cal)])
    total = q.sum(axis=1, keepdims=True)
    bad = total[:, 0] <= 0
    q[bad] = raw[bad]
    total[bad] = raw[bad].sum(axis=1, keepdims=True)
    return q / total


def _soft_auc(score: np.ndarray, w: np.ndarray) -> float | None:
    """Expected ROC AUC with each row positive with probability ``w`` (ratio of the
    expected pair counts, ties counted half)."""
    pos, neg = float(w.sum()), float((1 - w).sum())
    if pos <= 0 or neg <= 0:
        return None
    _, inv = np.unique(score, return_inverse=True)
    gpos = np.bincount(inv, weights=w)
    gneg = np.bincount(inv, weights=1 - w)
    below = np.concatenate([[0.0], np.cumsum(gneg)[:-1]])
    return float(np.sum(gpos * (below + 0.5 * gneg)) / (pos * neg))


def _avg_ranks(score: np.ndarray) -> np.ndarray:
    order = np.argsort(score, kind="mergesort")
    _, start, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(score.size)
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)
    return ranks


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def _expected(
    q: np.ndarray, raw: np.ndarray, pred: np.ndarray, pos: int | None
) -> dict[str, float | None]:
    n, k = q.shape
    out: dict[str, float | None] = {"accuracy": float(q[np.arange(n), pred].mean())}
    cls = [pos] if pos is not None else list(range(k))
    ps, rs, fs, aucs = [], [], [], []
    for c in cls:
        pp = pred == c
        tp = float(q[pp, c].sum())
        predicted, actual = float(pp.sum()), float(q[:, c].sum())
        ps.append(tp / predicted if predicted else 0.0)
        rs.append(tp / actual if actual else 0.0)
        fs.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
        aucs.append(_soft_auc(raw[:, c], q[:, c]))
    out.update(precision=float(np.mean(ps)), recall=float(np.mean(rs)), f1=float(np.mean(fs)))
    out["roc_auc"] = (
        None if any(a is None for a in aucs) else float(np.mean([a for a in aucs if a is not None]))
    )
    return out


def _sampled(
    q: np.ndarray,
    raw: np.ndarray,
    pred: np.ndarray,
    pos: int | None,
    n_samples: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    n, k = q.shape
    u = rng.random((n_samples, n, 1))
    y = np.minimum((u > np.cumsum(q, axis=1)[None]).sum(axis=2), k - 1)  # (S, n) class index
    out = {"accuracy": (y == pred[None]).mean(axis=1)}
    cls = [pos] if pos is not None else list(range(k))
    ps, rs, fs, aucs = [], [], [], []
    for c in cls:
        yc, pp = y == c, (pred == c)[None]
        tp = (yc & pp).sum(axis=1).astype(np.float64)
        predicted = np.full(n_samples, float(pp.sum()))
        actual = yc.sum(axis=1).astype(np.float64)
        seen = (predicted + actual) > 0
        ps.append(np.where(seen, _ratio(tp, predicted), np.nan))
        rs.append(np.where(seen, _ratio(tp, actual), np.nan))
        fs.append(np.where(seen, _ratio(2 * tp, predicted + actual), np.nan))
        n1 = actual
        n0 = n - n1
        ranks = _avg_ranks(raw[:, c])
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (yc.astype(np.float64) @ ranks - n1 * (n1 + 1) / 2.0) / (n1 * n0)
        aucs.append(np.where((n1 > 0) & (n0 > 0), auc, np.nan))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out["precision"] = np.nanmean(np.vstack(ps), axis=0)
        out["recall"] = np.nanmean(np.vstack(rs), axis=0)
        out["f1"] = np.nanmean(np.vstack(fs), axis=0)
        out["roc_auc"] = np.mean(np.vstack(aucs), axis=0)
    return out


@dataclass
class EstimateReport(WindowRows):
    """Estimated performance per window: ``rows`` are plain dicts with ``window_start``,
    ``rows``, each metric with ``<metric>_lower`` / ``<metric>_upper``, and the shift of
    the window's confidence (max probability) against the reference's
    (``confidence_ks``, ``confidence_p``; None without a reference)."""

    window: str
    level: float
    classes: list[Any]
    positive: Any | None
    calibrated: bool
    n_samples: int
    calibration_method: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: tuple[str, ...] = ESTIMATED
    method: str = (
        "CBPE: expected confusion matrix from the (calibrated) probabilities; interval: "
        "central range over label sets drawn from those probabilities"
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (timestamps as ISO text)."""
        rows = self.plain_rows()
        return {
            "window": self.window,
            "level": self.level,
            "method": self.method,
            "classes": [c.item() if hasattr(c, "item") else c for c in self.classes],
            "positive": self.positive,
            "calibrated": self.calibrated,
            "calibration_method": self.calibration_method,
            "n_samples": self.n_samples,
            "metrics": list(self.metrics),
            "rows": rows,
        }

    def render(self, width: int = 80) -> str:
        """A text table (rich) of the windows and their estimates."""
        return render_table(
            f"estimated performance (CBPE, window {self.window})",
            self.rows,
            ["window_start", "rows", *self.metrics, "confidence_ks"],
            width,
            [self.method],
        )

    def compare(self, realised: PerformanceReport) -> pd.DataFrame:
        """One row per window and metric: ``estimated``, ``lower``, ``upper``,
        ``realised`` and ``within`` (the realised value inside the interval; None where
        either is unknown)."""
        import pandas as pd

        real = {r["window_start"]: r for r in realised.rows if "segment" not in r}
        out = []
        for r in self.rows:
            got = real.get(r["window_start"], {})
            for m in self.metrics:
                value, lo, hi = got.get(m), r.get(f"{m}_lower"), r.get(f"{m}_upper")
                within = (
                    None if value is None or lo is None or hi is None else bool(lo <= value <= hi)
                )
                out.append(
                    {
                        "window_start": r["window_start"],
                        "metric": m,
                        "estimated": r.get(m),
                        "lower": lo,
                        "upper": hi,
                        "realised": value,
                        "labelled": got.get("labelled"),
                        "within": within,
                    }
                )
        return pd.DataFrame(out)


def _prepare(
    df: pd.DataFrame, classes: list[Any], probas: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    raw = df[probas].to_numpy(dtype=np.float64)
    if np.isnan(raw).any():
        raise Invalid("the probability columns hold nulls", field=probas[0])
    if "prediction" in df.columns and df["prediction"].notna().all():
        index = {c: i for i, c in enumerate(classes)}
        vals = df["prediction"].tolist()
        pred = np.array(
            [index.get(int(v) if isinstance(v, float) and v.is_integer() else v, -1) for v in vals]
        )
        if np.any(pred < 0):
            pred = raw.argmax(axis=1)
    else:
        pred = raw.argmax(axis=1)
    return raw, pred


def estimate_performance(
    frame: Any,
    *,
    window: str | None = "1h",
    classes: list[Any] | None = None,
    positive: Any | None = None,
    calibration: Any | None = None,
    method: str = "isotonic",
    reference: Any | None = None,
    n_samples: int = 300,
    level: float = 0.95,
    seed: int | None = 0,
) -> EstimateReport:
    """CBPE estimate of accuracy, precision, recall, F1 and ROC AUC per ``window`` of
    ``frame`` (``ts``, ``proba_<i>``, ``prediction``; labels not needed).

    ``calibration``: a labelled reference frame (``label``, ``proba_<i>``) to recalibrate
    the probabilities on (``method``: ``isotonic`` or ``platt``; one-vs-rest, then
    renormalised); None trusts them as they are. ``reference`` (default: ``calibration``)
    is what the confidence distribution is compared with (KS on the max probability).
    Binary metrics are of ``positive`` (default the second class); several classes: macro.
    """
    from loopstack.monitoring._labels import _as_frame
    from loopstack.monitoring._stats import numeric_two_sample

    df = _as_frame(frame, "predictions")
    probas = proba_columns(df)
    if not probas or "ts" not in df.columns:
        raise Invalid(
            f"expected 'ts' and proba_<i> columns; got {list(map(str, df.columns))}", field="frame"
        )
    if not 0 < level < 1 or n_samples < 10:
        raise Invalid(
            f"expected 0 < level < 1 and n_samples >= 10; got {level}, {n_samples}", field="level"
        )
    if method not in ("isotonic", "platt"):
        raise Invalid(f"the 'method' must be 'isotonic' or 'platt'; got {method!r}", field="method")
    k = len(probas)
    ref = None
    if calibration is not None:
        ref = _as_frame(calibration, "calibration reference")
        if "label" not in ref.columns or proba_columns(ref) != probas:
            raise Invalid(
                "the calibration reference needs 'label' and the same proba_<i> columns",
                field="calibration",
            )
    if classes is not None:
        cls = list(classes)
    elif ref is not None and "prediction" in ref.columns:
        cls = infer_classes(ref, None)
    elif "prediction" in df.columns:
        cls = infer_classes(df if "label" in df.columns else df.assign(label=None), None)
    else:
        cls = list(range(k))
    if classes is None and len(cls) != k:
        cls = list(range(k))
    if len(cls) != k:
        raise Invalid(f"{k} probability columns but classes {cls}", field="classes")
    pos = None
    if k == 2:
        pos = (
            cls.index(cls[1] if positive is None else positive)
            if (positive is None or positive in cls)
            else -1
        )
        if pos < 0:
            raise Invalid(
                f"the 'positive' class {positive!r} is not one of {cls}", field="positive"
            )
    cal = None if ref is None else _calibrators(ref, cls, probas, method)
    ref_conf = None
    ref_frame = reference if reference is not None else calibration
    if ref_frame is not None:
        ref_conf = _as_frame(ref_frame, "reference")[probas].to_numpy(dtype=np.float64).max(axis=1)
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    starts = window_starts(df["ts"], window)
    rows = []
    for start, g in df.groupby(starts.to_numpy(), sort=True):
        raw, pred = _prepare(g, cls, probas)
        q = _calibrated(raw, cal)
        row: dict[str, Any] = {
            "window_start": start.to_pydatetime() if hasattr(start, "to_pydatetime") else start,
            "rows": len(g),
        }
        est = _expected(q, raw, pred, pos)
        draws = _sampled(q, raw, pred, pos, n_samples, rng)
        for m in ESTIMATED:
            row[m] = est[m]
            d = draws[m][~np.isnan(draws[m])]
            ok = est[m] is not None and d.size > 0
            row[f"{m}_lower"] = float(np.quantile(d, lo_q)) if ok else None
            row[f"{m}_upper"] = float(np.quantile(d, hi_q)) if ok else None
        if ref_conf is not None and ref_conf.size:
            stats = numeric_two_sample(ref_conf, raw.max(axis=1))
            row["confidence_ks"], row["confidence_p"] = stats["ks_statistic"], stats["ks_p_value"]
        else:
            row["confidence_ks"] = row["confidence_p"] = None
        rows.append(row)
    return EstimateReport(
        window=window or "whole",
        level=level,
        classes=cls,
        positive=None if pos is None else cls[pos],
        calibrated=cal is not None,
        calibration_method=None if cal is None else method,
        n_samples=n_samples,
        rows=rows,
    )
