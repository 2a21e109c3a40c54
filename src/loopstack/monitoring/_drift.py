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

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopstack.errors import Invalid
from loopstack.monitoring._report import ColumnDrift, DriftReport, sort_key
from loopstack.monitoring._stats import (
    CORRECTIONS,
    Scratch,
    adjust_p_values,
    categorical_two_sample,
    numeric_two_sample,
)

__all__ = ["DriftConfig", "drift"]

NUMERIC_TESTS = ("ks", "psi", "wasserstein")
CATEGORICAL_TESTS = ("chi2", "psi", "jensenshannon")
_P_TESTS = ("ks", "chi2")
#: score tests' default cut-offs: PSI's customary "moderate shift", Evidently's 0.1 for
#: Wasserstein (in reference sds) and Jensen-Shannon (base 2, in [0, 1])
DEFAULT_THRESHOLDS = {"psi": 0.1, "wasserstein": 0.1, "jensenshannon": 0.1}


@dataclass(frozen=True)
class DriftConfig:
    """How ``drift`` tests and decides; every field has a default.

    ``min_effect_numeric`` is in reference standard deviations (Wasserstein-1 / std),
    ``min_effect_categorical`` in total variation. They apply when both samples have at
    least ``effect_min_n`` rows (``require_effect=None``), always (``True``) or never
    (``False``: the test alone, as scipy's plain two-sample KS).
    """

    alpha: float = 0.05
    correction: str = "bh"
    numeric_test: str = "ks"
    categorical_test: str = "chi2"
    column_tests: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    min_effect_numeric: float = 0.025
    min_effect_categorical: float = 0.025
    require_effect: bool | None = None
    effect_min_n: int = 5000
    max_categories_numeric: int = (
        20  #: an integer column with at most this many values is categorical
    )
    share_threshold: float = 0.5
    psi_bins: int = 10

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, got: Any) -> Invalid:
            return Invalid(f"drift: {name!r} must be {expected}; got {got!r} instead")

        if not (isinstance(self.alpha, int | float) and 0 < self.alpha < 1):
            raise bad("alpha", "a number strictly between 0 and 1", self.alpha)
        if self.correction not in CORRECTIONS:
            raise bad("correction", f"one of {', '.join(CORRECTIONS)}", self.correction)
        if self.numeric_test not in NUMERIC_TESTS:
            raise bad("numeric_test", f"one of {', '.join(NUMERIC_TESTS)}", self.numeric_test)
        if self.categorical_test not in CATEGORICAL_TESTS:
            raise bad(
                "categorical_test", f"one of {', '.join(CATEGORICAL_TESTS)}", self.categorical_test
            )
        valid = sorted(set(NUMERIC_TESTS + CATEGORICAL_TESTS))
        for col, test in self.column_tests.items():
            if test not in valid:
                raise bad(f"column_tests[{col!r}]", f"one of {', '.join(valid)}", test)
        for test, value in self.thresholds.items():
            if test not in DEFAULT_THRESHOLDS:
                raise bad("thresholds", f"keyed by one of {', '.join(DEFAULT_THRESHOLDS)}", test)
            if not isinstance(value, int | float) or value < 0:
                raise bad(f"thresholds[{test!r}]", "a non-negative number", value)
        for name in ("min_effect_numeric", "min_effect_categorical"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise bad(name, "a non-negative number", value)
        if self.require_effect not in (None, True, False):
            raise bad("require_effect", "True, False or None", self.require_effect)
        if not (isinstance(self.share_threshold, int | float) and 0 < self.share_threshold <= 1):
            raise bad("share_threshold", "a number in (0, 1]", self.share_threshold)
        for name in ("effect_min_n", "max_categories_numeric", "psi_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "a positive integer", value)

    def threshold(self, test: str) -> float:
        """The cut-off of ``test``: alpha for p-value tests, the score's threshold otherwise."""
        if test in _P_TESTS:
            return float(self.alpha)
        return float(self.thresholds.get(test, DEFAULT_THRESHOLDS[test]))


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
    test = config.column_tests.get(
        name, config.numeric_test if kind == "numeric" else config.categorical_test
    )
    allowed = NUMERIC_TESTS if kind == "numeric" else CATEGORICAL_TESTS
    if test not in allowed:
        raise Invalid(
            f"drift: column_tests[{name!r}] must be one of {', '.join(allowed)} for a "
            f"{kind} column; got {test!r} instead"
        )
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
    if min(sizes) == 0:
        side = "reference" if sizes[0] == 0 else "current data"
        return ColumnDrift(
            kind=kind,
            status="empty",
            n_reference=sizes[0],
            n_current=sizes[1],
            note=f"no non-null values in the {side}",
            **common,
        )
    if kind == "numeric":
        metrics = numeric_two_sample(a, b, psi_bins=config.psi_bins, scratch=scratch)
        effect, measure, min_effect = (
            metrics["wasserstein_sd"],
            "wasserstein_sd",
            config.min_effect_numeric,
        )
        statistic = {"ks": "ks_statistic", "psi": "psi", "wasserstein": "wasserstein_sd"}[test]
        p = metrics["ks_p_value"] if test == "ks" else None
    else:
        metrics = categorical_two_sample(rcount, ccount)
        metrics["categories"] = len(cats)
        effect, measure, min_effect = metrics["tv"], "tv", config.min_effect_categorical
        statistic = {"chi2": "chi2_statistic", "psi": "psi", "jensenshannon": "jensenshannon"}[test]
        p = metrics["chi2_p_value"] if test == "chi2" else None
    needs_effect = (
        config.require_effect
        if config.require_effect is not None
        else min(sizes) >= config.effect_min_n
    )
    note = ""
    if metrics.get("reference_std") == 0.0:
        note = "constant in the reference"
    return ColumnDrift(
        kind=kind,
        status="ok",
        test=test,
        statistic=float(metrics[statistic]),
        p_value=p,
        threshold=config.threshold(test),
        effect_size=float(effect),
        effect_measure=measure,
        min_effect=float(min_effect) if needs_effect and test in _P_TESTS else None,
        n_reference=sizes[0],
        n_current=sizes[1],
        metrics={k: float(v) for k, v in metrics.items()},
        note=note,
        **common,
    )


def _is_number(series: Any) -> bool:
    import pandas as pd

    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    )


def _decide(columns: list[ColumnDrift], config: DriftConfig) -> list[ColumnDrift]:
    from dataclasses import replace

    tested = [i for i, c in enumerate(columns) if c.status == "ok" and c.p_value is not None]
    adjusted = adjust_p_values([columns[i].p_value or 0.0 for i in tested], config.correction)
    out = list(columns)
    for i, padj in zip(tested, adjusted, strict=True):
        c = out[i]
        effect_ok = c.min_effect is None or (c.effect_size or 0.0) >= c.min_effect
        out[i] = replace(c, p_adjusted=padj, drifted=bool(padj < config.alpha and effect_ok))
    for i, c in enumerate(out):
        if c.status == "ok" and c.p_value is None:
            score = c.statistic if c.statistic is not None else 0.0
            out[i] = replace(c, drifted=bool(score >= (c.threshold or math.inf)))
    return out


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
    for name, value in (("columns", columns), ("exclude", exclude)):
        if value is not None and (
            isinstance(value, str) or not all(isinstance(v, str) for v in value)
        ):
            raise Invalid(f"drift: {name!r} must be a list of column names; got {value!r} instead")
    ref_cols, cur_cols = [str(c) for c in ref.columns], [str(c) for c in cur.columns]
    ref.columns, cur.columns = ref_cols, cur_cols
    names = list(columns) if columns is not None else list(dict.fromkeys(ref_cols + cur_cols))
    if columns is not None:
        missing = [c for c in names if c not in ref_cols and c not in cur_cols]
        if missing:
            raise Invalid(
                f"drift: 'columns' names {', '.join(map(repr, missing))}, in neither the "
                f"reference nor the current data"
            )
    skip = set(exclude or ())
    scratch = Scratch()  # work arrays shared by the columns' tests
    results = []
    for name in names:
        if name in skip:
            continue
        if name not in ref_cols or name not in cur_cols:
            status = "missing_in_reference" if name not in ref_cols else "missing_in_current"
            results.append(ColumnDrift(column=name, kind="", status=status))
            continue
        results.append(_column(name, ref[name], cur[name], config, scratch))
    results = _decide(results, config)
    compared = [c for c in results if c.status == "ok"]
    share = sum(c.drifted for c in compared) / len(compared) if compared else 0.0
    results.sort(key=sort_key)
    return DriftReport(
        columns=results,
        drift_share=share,
        share_threshold=float(config.share_threshold),
        dataset_drift=bool(compared) and share >= config.share_threshold,
        correction=config.correction,
        n_reference=len(ref),
        n_current=len(cur),
    )
