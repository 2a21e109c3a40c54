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
    "adjust_p_values",
    "categorical_two_sample",
    "chi2_sf",
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


def numeric_two_sample(ref: np.ndarray, cur: np.ndarray, *, psi_bins: int = 10) -> dict[str, Any]:
    """KS statistic and p-value, Wasserstein-1 (raw and over the reference std) and PSI.

    ``ref`` and ``cur`` are float arrays without NaN, each non-empty. One sort of each
    sample serves every statistic.
    """
    a, b = np.sort(ref), np.sort(cur)
    n, m = a.size, b.size
    pooled = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(a, pooled, side="right") / n
    fb = np.searchsorted(b, pooled, side="right") / m
    gap = np.abs(fa - fb)
    d = float(gap.max())
    en = math.sqrt(n * m / (n + m))
    # Stephens' small-sample correction of the asymptotic law
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    wasserstein = float(np.sum(gap[:-1] * np.diff(pooled)))
    ref_std = float(a.std())
    scale = ref_std if ref_std > 0 else float(b.std())
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
