"""Two-sample statistics in numpy alone (scipy is not a loopstack dependency).

Kolmogorov-Smirnov with its asymptotic p-value, the Wasserstein-1 distance and PSI on
sorted samples; chi-squared on a 2 x k contingency table with its survival function
(the regularised upper incomplete gamma); Jensen-Shannon and total-variation distances;
multiple-testing corrections.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "Scratch",
    "adjust_p_values",
    "categorical_two_sample",
    "chi2_sf",
    "ecdf_gap",
    "kolmogorov_sf",
    "numeric_two_sample",
]

#: a PSI bin share that is zero on one side is smoothed to this, so PSI stays finite
_PSI_EPS = 1e-4
#: categories whose expected count is below this on either side are pooled (Cochran's rule)
_MIN_EXPECTED = 5.0

CORRECTIONS = ("bh", "holm", "bonferroni", "none")


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (the KS statistic's limit law)."""
    if lam <= 0:
        return 1.0
    if lam < 1.18:
        # the theta-function form converges fast for small lam
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * lam * lam)) for k in range(1, 8))
        return max(0.0, min(1.0, 1.0 - math.sqrt(2 * math.pi) / lam * s))
    s = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 20))
    return max(0.0, min(1.0, 2.0 * s))


def _gamma_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(100_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_cont_fraction(a: float, x: float) -> float:
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-squared variable with ``dof`` degrees of freedom.

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    """
    if dof <= 0 or x <= 0:
        return 1.0
    a, half = dof / 2.0, x / 2.0
    if half < a + 1.0:
        return max(0.0, min(1.0, 1.0 - _gamma_series(a, half)))
    return max(0.0, min(1.0, _gamma_cont_fraction(a, half)))


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    pe = np.maximum(expected / max(expected.sum(), 1), _PSI_EPS)
    pa = np.maximum(actual / max(actual.sum(), 1), _PSI_EPS)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


class Scratch:
    """Work arrays reused from one column to the next within one ``drift`` call.

    A fresh array of a few MB comes from the kernel as new pages, and on a virtual
    machine each page fault is dear: a 200k-element cumulative sum takes ~2.6 ms into a
    fresh array and ~0.2 ms into a reused one. Buffers only grow; they die with this.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int, dtype: Any = np.float64) -> np.ndarray:
        """A work array of ``size`` elements (uninitialised), shared by every call for ``name``."""
        buf = self._arrays.get(name)
        if buf is None or buf.size < size or buf.dtype != np.dtype(dtype):
            buf = self._arrays[name] = np.empty(size, dtype=dtype)
        return buf[:size]

    def ranks(self, size: int) -> np.ndarray:
        """``1.0, 2.0, ..., size`` (read-only use)."""
        buf = self._arrays.get("ranks")
        if buf is None or buf.size < size:
            buf = self._arrays["ranks"] = np.arange(1, size + 1, dtype=np.float64)
        return buf[:size]


def ecdf_gap(
    a: np.ndarray, b: np.ndarray, scratch: Scratch | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pooled values and ``n * m * (F_a - F_b)`` just after each.

    ``a`` and ``b`` are sorted, non-empty float arrays. One stable merge of the two runs
    (a timsort of their concatenation is linear: it finds the two runs and merges them)
    replaces a sort of the pooled sample and two binary searches into each side. The
    gap is a count held in a float, exact up to 2**53 (samples of ~60M rows a side), so
    ties and the largest gap are exact. The arrays returned may be ``scratch``'s: read
    them before the next call.
    """
    s = scratch if scratch is not None else Scratch()
    n, m = a.size, b.size
    total = n + m
    pooled = s.get("merge", total)
    pooled[:n], pooled[n:] = a, b
    order = np.argsort(pooled, kind="stable")
    values = np.take(pooled, order, out=s.get("values", total))
    from_a = s.get("mask", total, np.bool_)
    np.less(order, n, out=from_a)
    del order
    # n*m*(F_a - F_b) after position i: from_a*m - (i + 1 - from_a)*n
    gap = np.cumsum(from_a, out=s.get("gap", total))
    gap *= total
    gap -= np.multiply(s.ranks(total), n, out=s.get("tmp", total))
    distinct = np.not_equal(values[1:], values[:-1], out=from_a[: total - 1])
    if not distinct.all():  # ties: the ECDFs are read after the last of each run
        last = np.flatnonzero(np.append(distinct, True))
        values, gap = values[last], gap[last]
    return values, gap


def numeric_two_sample(
    ref: np.ndarray, cur: np.ndarray, *, psi_bins: int = 10, scratch: Scratch | None = None
) -> dict[str, Any]:
    """KS statistic and p-value, Wasserstein-1 (raw and over the reference std) and PSI.

    ``ref`` and ``cur`` are float arrays without NaN, each non-empty (left unchanged).
    One sort of each sample and one merge of the two serve every statistic; ``scratch``
    lends work arrays when many columns are compared in a row.
    """
    s = scratch if scratch is not None else Scratch()
    n, m = ref.size, cur.size
    a, b = s.get("a", n), s.get("b", m)
    a[:], b[:] = ref, cur
    a.sort()
    b.sort()
    values, gap = ecdf_gap(a, b, s)
    np.abs(gap, out=gap)
    d = float(gap.max()) / (n * m)
    en = math.sqrt(n * m / (n + m))
    # Stephens' small-sample correction of the asymptotic law
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    # in place, no BLAS: a threaded dot product stalls when the cores are busy
    steps = np.subtract(values[1:], values[:-1], out=s.get("tmp", values.size - 1))
    steps *= gap[:-1]
    wasserstein = float(steps.sum()) / (n * m)
    ref_std, cur_std = _std(a, s), _std(b, s)
    scale = ref_std if ref_std > 0 else cur_std
    # both constant: any difference in value is a full move
    effect = wasserstein / scale if scale > 0 else (0.0 if a[0] == b[0] else math.inf)
    qs = np.linspace(0, 1, psi_bins + 1)[1:-1]
    edges = np.unique(a[np.minimum((qs * n).astype(np.int64), n - 1)])
    ca = np.diff(np.concatenate([[0], np.searchsorted(a, edges, side="right"), [n]]))
    cb = np.diff(np.concatenate([[0], np.searchsorted(b, edges, side="right"), [m]]))
    return {
        "ks_statistic": d,
        "ks_p_value": p,
        "wasserstein": wasserstein,
        "wasserstein_sd": effect,
        "psi": _psi(ca.astype(float), cb.astype(float)),
        "reference_std": ref_std,
    }


def _std(x: np.ndarray, scratch: Scratch) -> float:
    """Population standard deviation, the deviations in a reused array."""
    dev = np.subtract(x, x.mean(), out=scratch.get("tmp", x.size))
    dev *= dev
    return math.sqrt(float(dev.sum()) / x.size)


def categorical_two_sample(ref_counts: np.ndarray, cur_counts: np.ndarray) -> dict[str, Any]:
    """Chi-squared two-sample test of homogeneity, Jensen-Shannon, TV distance and PSI.

    The test is on the 2 x k contingency table of both samples' counts: the reference
    proportions are estimates, not exact (a goodness-of-fit test against them treats
    them as exact and over-flags). Categories with an expected count under 5 on either
    side are pooled into one.
    """
    r, c = ref_counts.astype(float), cur_counts.astype(float)
    n, m = r.sum(), c.sum()
    p, q = r / n, c / m
    tv = float(0.5 * np.abs(p - q).sum())
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / mid), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / mid), 0.0).sum()
    js = float(math.sqrt(max(0.0, 0.5 * kl_p + 0.5 * kl_q)))
    total = r + c
    er, ec = total * n / (n + m), total * m / (n + m)
    sparse = (er < _MIN_EXPECTED) | (ec < _MIN_EXPECTED)
    if sparse.any():
        r = np.append(r[~sparse], r[sparse].sum())
        c = np.append(c[~sparse], c[sparse].sum())
        if r[-1] + c[-1] == 0:
            r, c = r[:-1], c[:-1]
        total = r + c
        er, ec = total * n / (n + m), total * m / (n + m)
    k = r.size
    if k < 2:
        stat, pv = 0.0, 1.0
    else:
        stat = float(np.sum((r - er) ** 2 / er) + np.sum((c - ec) ** 2 / ec))
        pv = chi2_sf(stat, k - 1)
    return {
        "chi2_statistic": stat,
        "chi2_p_value": pv,
        "chi2_dof": max(k - 1, 0),
        "jensenshannon": js,
        "tv": tv,
        "psi": _psi(ref_counts.astype(float), cur_counts.astype(float)),
    }


def adjust_p_values(p: list[float], method: str) -> list[float]:
    """Adjusted p-values across columns: Benjamini-Hochberg, Holm, Bonferroni or none.

    >>> [round(x, 3) for x in adjust_p_values([0.01, 0.04, 0.03], "bh")]
    [0.03, 0.04, 0.04]
    """
    k = len(p)
    if k == 0 or method == "none":
        return list(p)
    arr = np.asarray(p, dtype=float)
    if method == "bonferroni":
        return list(np.minimum(arr * k, 1.0))
    order = np.argsort(arr)
    ranked = arr[order]
    if method == "holm":
        adj = np.maximum.accumulate(ranked * (k - np.arange(k)))
    else:  # bh
        adj = np.minimum.accumulate((ranked * k / np.arange(1, k + 1))[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]
