"""What both drift paths share: the configuration, the per-column verdict and the report.

``drift`` tests raw columns (``_drift``), ``drift_profiles`` binned sketches
(``_profile_drift``); each computes a column's metrics its own way and hands them here,
so the choice of test, the effect rule at large samples, the correction across columns
and the dataset verdict are one piece of code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from loopstack.errors import Invalid
from loopstack.monitoring._report import ColumnDrift, DriftReport, sort_key
from loopstack.monitoring._stats import CORRECTIONS, adjust_p_values

__all__ = [
    "CATEGORICAL_TESTS",
    "NUMERIC_TESTS",
    "DriftConfig",
    "check_selection",
    "compare_columns",
    "decide",
    "empty_result",
    "report",
    "selected_names",
    "test_for",
    "tested_result",
]

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


def decide(columns: list[ColumnDrift], config: DriftConfig) -> list[ColumnDrift]:
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


def check_selection(columns: Any, exclude: Any) -> None:
    """Refuse ``columns`` / ``exclude`` that are not lists of column names."""
    for name, value in (("columns", columns), ("exclude", exclude)):
        if value is not None and (
            isinstance(value, str) or not all(isinstance(v, str) for v in value)
        ):
            raise Invalid(f"drift: {name!r} must be a list of column names; got {value!r} instead")


def selected_names(
    columns: list[str] | None, reference: list[str], current: list[str]
) -> list[str]:
    """The columns to compare: ``columns``, each in at least one side, or every column."""
    if columns is None:
        return list(dict.fromkeys([*reference, *current]))
    missing = [c for c in columns if c not in reference and c not in current]
    if missing:
        raise Invalid(
            f"drift: 'columns' names {', '.join(map(repr, missing))}, in neither the "
            f"reference nor the current data"
        )
    return list(columns)


def compare_columns(
    names: list[str],
    exclude: list[str] | None,
    reference: Collection[str],
    current: Collection[str],
    compare: Callable[[str], ColumnDrift],
) -> list[ColumnDrift]:
    """``compare(name)`` for each column in both sides; a 'missing_in_*' result otherwise."""
    skip = set(exclude or ())
    results = []
    for name in names:
        if name in skip:
            continue
        if name not in reference or name not in current:
            status = "missing_in_reference" if name not in reference else "missing_in_current"
            results.append(ColumnDrift(column=name, kind="", status=status))
            continue
        results.append(compare(name))
    return results


def test_for(name: str, kind: str, config: DriftConfig) -> str:
    """The test ``config`` picks for column ``name`` of ``kind`` ('numeric'/'categorical')."""
    numeric = kind == "numeric"
    test = config.column_tests.get(
        name, config.numeric_test if numeric else config.categorical_test
    )
    allowed = NUMERIC_TESTS if numeric else CATEGORICAL_TESTS
    if test not in allowed:
        raise Invalid(
            f"drift: column_tests[{name!r}] must be one of {', '.join(allowed)} for a "
            f"{kind} column; got {test!r} instead"
        )
    return test


def empty_result(kind: str, sizes: tuple[int, int], common: dict[str, Any]) -> ColumnDrift | None:
    """The 'empty' verdict when either side has no values to compare, else None."""
    if min(sizes) > 0:
        return None
    side = "reference" if sizes[0] == 0 else "current data"
    return ColumnDrift(
        kind=kind,
        status="empty",
        n_reference=int(sizes[0]),
        n_current=int(sizes[1]),
        note=f"no non-null values in the {side}",
        **common,
    )


def tested_result(
    kind: str,
    test: str,
    metrics: dict[str, Any],
    sizes: tuple[int, int],
    config: DriftConfig,
    common: dict[str, Any],
) -> ColumnDrift:
    """A compared column's result from its metrics (the verdict comes later, in ``decide``).

    Numeric columns take the Wasserstein distance in reference sds as their effect,
    categorical ones the total variation; the effect is required only at large samples.
    """
    if kind == "numeric":
        effect, measure, min_effect = (
            metrics["wasserstein_sd"],
            "wasserstein_sd",
            config.min_effect_numeric,
        )
        statistic = {"ks": "ks_statistic", "psi": "psi", "wasserstein": "wasserstein_sd"}[test]
        p = metrics["ks_p_value"] if test == "ks" else None
    else:
        effect, measure, min_effect = metrics["tv"], "tv", config.min_effect_categorical
        statistic = {"chi2": "chi2_statistic", "psi": "psi", "jensenshannon": "jensenshannon"}[test]
        p = metrics["chi2_p_value"] if test == "chi2" else None
    needs_effect = (
        config.require_effect
        if config.require_effect is not None
        else min(sizes) >= config.effect_min_n
    )
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
        n_reference=int(sizes[0]),
        n_current=int(sizes[1]),
        metrics={k: float(v) for k, v in metrics.items()},
        note="constant in the reference" if metrics.get("reference_std") == 0.0 else "",
        **common,
    )


def report(
    results: list[ColumnDrift], config: DriftConfig, n_reference: int, n_current: int
) -> DriftReport:
    """The verdicts (``decide``), the dataset-level drift share and the sorted report."""
    results = decide(results, config)
    compared = [c for c in results if c.status == "ok"]
    share = sum(c.drifted for c in compared) / len(compared) if compared else 0.0
    results.sort(key=sort_key)
    return DriftReport(
        columns=results,
        drift_share=share,
        share_threshold=float(config.share_threshold),
        dataset_drift=bool(compared) and share >= config.share_threshold,
        correction=config.correction,
        n_reference=n_reference,
        n_current=n_current,
    )
