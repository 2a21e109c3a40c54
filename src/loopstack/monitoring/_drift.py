"""``drift(reference, current)``: per-column two-sample drift and a dataset verdict.

Numeric columns: two-sample Kolmogorov-Smirnov, with the Wasserstein-1 distance over
the reference standard deviation as the effect size. Categorical columns (strings,
booleans, integers with few distinct values): chi-squared on the two samples'
contingency table, with the total-variation distance as the effect size. At large
samples (both sides at least ``effect_min_n`` rows) a column drifts only when its
corrected p-value is under ``alpha`` *and* its effect reaches ``min_effect``: on a
10M-row window every p-value is tiny, and a verdict should mean a move that matters.
"""

from __future__ import annotations

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
from loopstack.monitoring._report import ColumnDrift, DriftReport
from loopstack.monitoring._stats import Scratch, categorical_two_sample, numeric_two_sample

__all__ = ["DriftConfig", "drift"]


def _as_frame(obj: Any, role: str) -> Any:
    import pandas as pd
    import pyarrow as pa

    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, pa.Table):
        return obj.to_pandas()
    from loopstack.data import DatasetVersion

    if isinstance(obj, DatasetVersion):
        return obj.to_pandas()
    raise Invalid(
        f"drift: {role!r} must be a pandas DataFrame, a pyarrow Table or a DatasetVersion; "
        f"got {type(obj).__name__} instead"
    )


def _kind(series: Any, config: DriftConfig) -> str:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_integer_dtype(dtype):
        if series.nunique(dropna=True) <= config.max_categories_numeric:
            return "categorical"
        return "numeric"
    if pd.api.types.is_float_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "numeric"
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    ):
        return "categorical"
    return f"unsupported:{dtype}"


def _numeric_values(series: Any) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.dropna().astype("int64").to_numpy(dtype=float)
    else:
        values = series.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]  # no copy when nothing is missing


def _column(
    name: str, ref: Any, cur: Any, config: DriftConfig, scratch: Scratch | None = None
) -> ColumnDrift:
    n_ref, n_cur = len(ref), len(cur)
    kind_ref, kind_cur = _kind(ref, config), _kind(cur, config)
    # an integer column with few values on one side only: compare as numbers
    if {kind_ref, kind_cur} == {"numeric", "categorical"} and all(
        _is_number(s) for s in (ref, cur)
    ):
        kind_ref = kind_cur = "numeric"
    common: dict[str, Any] = {
        "column": name,
        "null_rate_reference": float(ref.isna().mean()) if n_ref else None,
        "null_rate_current": float(cur.isna().mean()) if n_cur else None,
    }
    if kind_ref.startswith("unsupported") or kind_cur.startswith("unsupported"):
        kind = kind_ref if kind_ref.startswith("unsupported") else kind_cur
        return ColumnDrift(
            kind=kind.split(":", 1)[1],
            status="unsupported",
            note="no drift test for this dtype",
            **common,
        )
    if kind_ref != kind_cur:
        return ColumnDrift(
            kind=f"{kind_ref}/{kind_cur}",
            status="type_mismatch",
            note=f"{ref.dtype} in the reference, {cur.dtype} in the current data",
            **common,
        )
    kind = kind_ref
    test = test_for(name, kind, config)
    if kind == "numeric":
        a, b = _numeric_values(ref), _numeric_values(cur)
        sizes = a.size, b.size
    else:
        try:
            rc = ref.dropna().value_counts()
            cc = cur.dropna().value_counts()
            cats = rc.index.union(cc.index)
        except TypeError:  # unhashable values (dicts, sets) have no categories to count
            return ColumnDrift(
                kind=kind, status="unsupported", note="values are not hashable", **common
            )
        rcount = rc.reindex(cats, fill_value=0).to_numpy()
        ccount = cc.reindex(cats, fill_value=0).to_numpy()
        sizes = int(rcount.sum()), int(ccount.sum())
    empty = empty_result(kind, sizes, common)
    if empty is not None:
        return empty
    if kind == "numeric":
        metrics = numeric_two_sample(a, b, psi_bins=config.psi_bins, scratch=scratch)
    else:
        metrics = categorical_two_sample(rcount, ccount)
        metrics["categories"] = len(cats)
    return tested_result(kind, test, metrics, sizes, config, common)


def _is_number(series: Any) -> bool:
    import pandas as pd

    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    )


def drift(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    config: DriftConfig | None = None,
    **options: Any,
) -> DriftReport:
    """Drift of ``current`` against ``reference``, per column and for the whole dataset.

    ``reference`` and ``current`` are pandas DataFrames, pyarrow Tables or dataset
    versions (``ls.get_dataset(...)``), or ``Profile``s (``ls.monitoring.profile``) on
    either side: then the test runs on the binned sketches (see ``_profile_drift``) and
    a table on the other side is profiled like the profile. ``columns`` picks columns
    (default: every column of either side), ``exclude`` drops some. ``config`` is a
    ``DriftConfig``; keyword ``options`` override its fields
    (``drift(a, b, alpha=0.01, correction="holm")``).

    >>> report = ls.monitoring.drift(train_df, last_week_df)
    >>> report["amount"].drifted, report["amount"].effect_size
    """
    from dataclasses import fields, replace

    if config is None:
        config = DriftConfig()
    elif not isinstance(config, DriftConfig):
        raise Invalid(f"drift: 'config' must be a DriftConfig; got {type(config).__name__} instead")
    if options:
        known = {f.name for f in fields(DriftConfig)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise Invalid(
                f"drift: unknown option(s) {', '.join(unknown)}; expected DriftConfig fields "
                f"({', '.join(sorted(known))})"
            )
        config = replace(config, **options)
    from loopstack.monitoring._profile import Profile

    if isinstance(reference, Profile) or isinstance(current, Profile):
        from loopstack.monitoring._profile_drift import drift_profiles

        return drift_profiles(reference, current, columns=columns, exclude=exclude, config=config)
    ref, cur = _as_frame(reference, "reference"), _as_frame(current, "current")
    check_selection(columns, exclude)
    ref_cols, cur_cols = [str(c) for c in ref.columns], [str(c) for c in cur.columns]
    ref.columns, cur.columns = ref_cols, cur_cols
    names = selected_names(columns, ref_cols, cur_cols)
    scratch = Scratch()  # work arrays shared by the columns' tests
    results = compare_columns(
        names,
        exclude,
        set(ref_cols),
        set(cur_cols),
        lambda name: _column(name, ref[name], cur[name], config, scratch),
    )
    return report(results, config, len(ref), len(cur))
