"""Drift between two profiles (``drift`` with a ``Profile`` on either side).

Numeric columns: the Kolmogorov-Smirnov statistic from the two binned CDFs at the
reference's bin edges, where those CDFs are exact, so the binned D is a lower bound of the
exact D (the supremum can fall inside a bin); with 256 quantile bins a bin holds 0.4% of
the reference and the gap is at most the change of |F - G| inside one bin, small against
any D that matters. Its p-value is the asymptotic Kolmogorov law with n and m, as in the
exact path. Wasserstein-1 sums |integral of F - G| over each bin, exact from the bins' counts and
sums of values (so exact where F - G keeps its sign inside a bin, a close lower bound
otherwise), over the reference standard deviation for the effect. PSI groups the bins into
``psi_bins`` groups of about equal reference mass (the exact path's reference deciles).
Categorical columns: the same chi-squared, TV and Jensen-Shannon on the profile counts
(values outside the reference's categories pooled in one "other" cell).
The decision rules (correction across columns, effect at large n) are the exact path's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopstack.errors import Invalid
from loopstack.monitoring._drift_verdict import (
    DriftConfig,
    check_selection,
    compare_columns,
    empty_result,
    report,
    selected_names,
    test_for,
    tested_result,
)
from loopstack.monitoring._profile import NUMERIC, ColumnProfile, Profile
from loopstack.monitoring._profiling import profile
from loopstack.monitoring._report import ColumnDrift, DriftReport
from loopstack.monitoring._stats import _psi, categorical_two_sample, kolmogorov_sf

__all__ = ["binned_numeric_two_sample", "drift_profiles"]


def _as_profile(obj: Any, like: Profile | None) -> Profile:
    return obj if isinstance(obj, Profile) else profile(obj, like=like)


def binned_numeric_two_sample(
    ref: ColumnProfile, cur: ColumnProfile, *, psi_bins: int = 10
) -> dict[str, Any]:
    """KS (binned, a lower bound), its p-value, Wasserstein-1 (raw and in reference sds), PSI.

    Both profiles must share their edges and have finite values on both sides.
    """
    edges = np.asarray(ref.edges, dtype=float)
    rc, cc = ref.counts.astype(float), cur.counts.astype(float)
    n, m = rc.sum(), cc.sum()
    # CDFs just below the first edge, then at every edge (exact there)
    f, g = np.cumsum(rc)[:-1] / n, np.cumsum(cc)[:-1] / m
    d = float(np.max(np.abs(f - g)))
    en = math.sqrt(n * m / (n + m))
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    lo = min([edges[0]] + [x.min for x in (ref, cur) if x.min is not None])
    hi = max([edges[-1]] + [x.max for x in (ref, cur) if x.max is not None])
    # bin j spans [a_j, b_j] (underflow from lo, overflow up to hi); with the bin's count
    # c and sum S, the integral of a CDF over it is exact: (b - a) F(a) + (c b - S) / n
    a = np.concatenate([[lo], edges])
    b = np.concatenate([edges, [hi]])

    def integrals(counts: np.ndarray, sums: np.ndarray, total: float) -> np.ndarray:
        left = np.concatenate([[0.0], np.cumsum(counts)[:-1]]) / total
        return (b - a) * left + (counts * b - sums) / total

    diff = integrals(rc, ref.bin_sums, n) - integrals(cc, cur.bin_sums, m)
    # exact where F - G keeps its sign inside each bin, a lower bound otherwise
    wasserstein = float(np.abs(diff).sum())
    ref_std = ref.std or 0.0
    scale = ref_std if ref_std > 0 else (cur.std or 0.0)
    # both constant: any difference in value is a full move
    effect = wasserstein / scale if scale > 0 else (0.0 if ref.min == cur.min else math.inf)
    # PSI: group the bins at the reference's 1/psi_bins quantiles of mass
    cum = np.cumsum(rc) / n
    cuts = np.searchsorted(cum, np.linspace(0, 1, psi_bins + 1)[1:-1], side="left")
    bounds = np.unique(np.concatenate([[0], cuts + 1, [rc.size]]))
    pr, pc = np.add.reduceat(rc, bounds[:-1]), np.add.reduceat(cc, bounds[:-1])
    return {
        "ks_statistic": d,
        "ks_p_value": p,
        "wasserstein": wasserstein,
        "wasserstein_sd": effect,
        "psi": _psi(pr, pc),
        "reference_std": ref_std,
        "bins": float(edges.size + 1),
    }


def _column(name: str, ref: ColumnProfile, cur: ColumnProfile, config: DriftConfig) -> ColumnDrift:
    common: dict[str, Any] = {
        "column": name,
        "null_rate_reference": ref.null_rate,
        "null_rate_current": cur.null_rate,
    }
    if "unsupported" in (ref.kind, cur.kind):
        dtype = ref.dtype if ref.kind == "unsupported" else cur.dtype
        return ColumnDrift(
            kind=dtype, status="unsupported", note="no drift test for this dtype", **common
        )
    if ref.kind != cur.kind:
        return ColumnDrift(
            kind=f"{ref.kind}/{cur.kind}",
            status="type_mismatch",
            note=f"{ref.dtype} in the reference, {cur.dtype} in the current data",
            **common,
        )
    kind = ref.kind
    test = test_for(name, kind, config)
    sizes = (ref.finite, cur.finite) if kind == NUMERIC else (ref.count, cur.count)
    empty = empty_result(kind, sizes, common)
    if empty is not None:
        return empty
    if ref.layout() != cur.layout():
        raise Invalid(
            f"drift: column {name!r} has different bins or categories in the two profiles; "
            "profile the current data with like=<the reference profile>"
        )
    if kind == NUMERIC:
        metrics = binned_numeric_two_sample(ref, cur, psi_bins=config.psi_bins)
    else:
        seen = (ref.counts + cur.counts) > 0
        metrics = categorical_two_sample(ref.counts[seen], cur.counts[seen])
        metrics["categories"] = int(seen.sum())
    return tested_result(kind, test, metrics, sizes, config, common)


def drift_profiles(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None,
    exclude: list[str] | None,
    config: DriftConfig,
) -> DriftReport:
    """``drift`` when either side is a Profile; the other side is profiled like it."""
    if isinstance(reference, Profile):
        ref = reference
        cur = _as_profile(current, ref)
    else:  # a profile of the current data only: the reference takes its layout
        cur = current
        ref = _as_profile(reference, cur)
    check_selection(columns, exclude)
    names = selected_names(columns, list(ref.columns), list(cur.columns))
    results = compare_columns(
        names,
        exclude,
        ref.columns,
        cur.columns,
        lambda name: _column(name, ref.columns[name], cur.columns[name], config),
    )
    return report(results, config, ref.num_rows, cur.num_rows)
