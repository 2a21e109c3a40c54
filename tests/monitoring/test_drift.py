"""Drift with known truth: shifts of known size are caught, no shift is flagged at most
at the configured false-positive rate (counted over deterministic seeds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopstack as ls
from loopstack import monitoring
from loopstack.errors import Invalid
from loopstack.monitoring import ColumnDrift, DriftConfig, DriftReport, drift
from loopstack.monitoring._stats import adjust_p_values, chi2_sf, numeric_two_sample

PROBS = np.array([0.4, 0.3, 0.2, 0.1])
CATS = np.array(["a", "b", "c", "d"])


def _binomial_upper(n: int, p: float, z: float = 3.0) -> float:
    return n * p + z * math.sqrt(n * p * (1 - p))


def test_all_is_sorted_and_exported_from_loopstack() -> None:
    assert monitoring.__all__ == sorted(monitoring.__all__)
    assert ls.monitoring.drift is drift
    assert "monitoring" in ls.__all__


@pytest.mark.parametrize(
    ("shift", "n"), [(0.05, 100_000), (0.1, 20_000), (0.5, 5_000), (1.0, 5_000)]
)
def test_location_shifts_are_caught_at_the_defaults(shift: float, n: int) -> None:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"x": rng.normal(size=n), "same": rng.normal(size=n)})
    cur = pd.DataFrame({"x": rng.normal(shift, 1, size=n), "same": rng.normal(size=n)})
    report = drift(ref, cur)
    col = report["x"]
    assert col.drifted, col
    assert col.test == "ks" and col.effect_measure == "wasserstein_sd"
    assert col.effect_size == pytest.approx(shift, rel=0.35)
    assert not report["same"].drifted
    assert report.drifted_columns == ["x"]


@pytest.mark.parametrize("scale", [1.2, 1.5])
def test_scale_changes_are_caught(scale: float) -> None:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"x": rng.normal(size=20_000)})
    cur = pd.DataFrame({"x": rng.normal(0, scale, size=20_000)})
    col = drift(ref, cur)["x"]
    assert col.drifted and col.effect_size > 0.1


@pytest.mark.parametrize("tv", [0.05, 0.2])
def test_categorical_moves_are_caught(tv: float) -> None:
    rng = np.random.default_rng(3)
    moved = PROBS + np.array([-tv, 0, 0, tv]) if tv < 0.4 else PROBS
    ref = pd.DataFrame({"c": rng.choice(CATS, size=20_000, p=PROBS)})
    cur = pd.DataFrame({"c": rng.choice(CATS, size=20_000, p=moved)})
    col = drift(ref, cur)["c"]
    assert col.kind == "categorical" and col.test == "chi2" and col.effect_measure == "tv"
    assert col.drifted
    assert col.effect_size == pytest.approx(tv, abs=0.015)


def test_without_the_effect_requirement_tiny_shifts_are_caught_like_plain_ks() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=100_000)})
    cur = pd.DataFrame({"x": rng.normal(0.02, 1, size=100_000)})
    assert drift(ref, cur, require_effect=False)["x"].drifted
    # at the defaults the effect (~0.02 sd) is below the practical threshold
    col = drift(ref, cur)["x"]
    assert col.p_adjusted is not None and col.p_adjusted < 0.05
    assert col.min_effect == 0.025


def test_a_huge_window_needs_a_practical_effect_not_just_a_tiny_p_value() -> None:
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"x": rng.normal(size=1_000_000)})
    cur = pd.DataFrame({"x": rng.normal(0.015, 1, size=1_000_000)})
    col = drift(ref, cur)["x"]
    assert col.p_value is not None and col.p_value < 1e-4
    assert col.effect_size < 0.025 and not col.drifted


def test_no_shift_is_flagged_at_most_at_alpha_across_many_seeds() -> None:
    seeds, n, alpha = 200, 500, 0.05
    flagged = any_flag_bh = tests = 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)

        def frame(rng: np.random.Generator = rng) -> pd.DataFrame:
            cols: dict[str, object] = {f"n{i}": rng.normal(size=n) for i in range(7)}
            cols.update({f"c{i}": rng.choice(CATS, size=n, p=PROBS) for i in range(3)})
            return pd.DataFrame(cols)

        ref, cur = frame(), frame()
        raw = drift(ref, cur, correction="none")
        flagged += sum(c.drifted for c in raw.columns)
        tests += len(raw.columns)
        any_flag_bh += bool(drift(ref, cur).drifted_columns)
    print(f"no-shift: {flagged}/{tests} column flags (raw), {any_flag_bh}/{seeds} runs (BH)")
    assert tests == seeds * 10
    # per column: at most the configured rate (binomial bound), and the test is alive
    assert flagged <= _binomial_upper(tests, alpha), flagged
    assert flagged >= tests * alpha - 3 * math.sqrt(tests * alpha * (1 - alpha)), flagged
    # across the 10 columns, BH keeps the dataset-level false alarm rate near alpha
    assert any_flag_bh <= _binomial_upper(seeds, alpha), any_flag_bh


def test_ks_and_chi2_agree_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n, shift in [(300, 0.1), (2000, 0.05), (5000, 0.0)]:
        a, b = rng.normal(size=n), rng.normal(shift, 1, size=n + 17)
        ours = numeric_two_sample(a, b)
        ref = stats.ks_2samp(a, b)
        assert ours["ks_statistic"] == pytest.approx(ref.statistic)
        assert ours["ks_p_value"] == pytest.approx(ref.pvalue, abs=0.01)
        assert ours["wasserstein"] == pytest.approx(stats.wasserstein_distance(a, b))
    for x, dof in [(3.84, 1), (10.0, 3), (500.0, 400), (0.5, 7)]:
        assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-6)


def test_corrections() -> None:
    p = [0.01, 0.04, 0.03]
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_p_values(p, "bh") == pytest.approx([0.03, 0.04, 0.04])
    assert adjust_p_values(p, "none") == p


def test_dataset_share_and_verdict() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=5000) for i in range(4)})
    cur = ref.copy()
    cur["x0"] = rng.normal(1, 1, size=5000)
    cur["x1"] = rng.normal(1, 1, size=5000)
    report = drift(ref, cur)
    assert report.drift_share == 0.5 and report.dataset_drift
    assert not drift(ref, cur, share_threshold=0.75).dataset_drift


def test_nulls_constants_empty_missing_and_mismatched_columns() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    x = rng.normal(size=n)
    x_cur = rng.normal(size=n)
    x_cur[: n // 4] = np.nan
    ref = pd.DataFrame(
        {
            "x": x,
            "const": np.ones(n),
            "const_moved": np.ones(n),
            "empty": [None] * n,
            "only_ref": x,
            "typed": x,
            "dicts": [{"k": 1}] * n,
            "cat": pd.Series(rng.choice(CATS, size=n)).where(rng.random(n) > 0.1),
        }
    )
    cur = pd.DataFrame(
        {
            "x": x_cur,
            "const": np.ones(n),
            "const_moved": np.full(n, 2.0),
            "empty": [None] * n,
            "only_cur": x,
            "typed": rng.choice(CATS, size=n),
            "dicts": [{"k": 2}] * n,
            "cat": rng.choice(CATS, size=n),
        }
    )
    report = drift(ref, cur)
    assert report["x"].status == "ok" and not report["x"].drifted
    assert report["x"].null_rate_current == pytest.approx(0.25)
    assert report["x"].n_current == n - n // 4
    assert report["cat"].null_rate_reference == pytest.approx(0.1, abs=0.03)
    assert report["const"].status == "ok" and not report["const"].drifted
    assert report["const_moved"].drifted and report["const_moved"].effect_size == math.inf
    assert report["empty"].status == "empty"
    assert report["only_ref"].status == "missing_in_current"
    assert report["only_cur"].status == "missing_in_reference"
    assert report["typed"].status == "type_mismatch"
    assert report["dicts"].status == "unsupported"
    # every status survives the dict and the table
    d = report.to_dict()
    assert {c["column"] for c in d["columns"]} == set(ref.columns) | set(cur.columns)
    assert d["columns"][0]["effect_size"] is None  # inf is not JSON
    assert all(len(line) <= 80 for line in report.render().splitlines())


def test_report_is_sorted_by_effect_and_renders_in_80_columns() -> None:
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({f"a_rather_long_column_name_{i}": rng.normal(size=3000) for i in range(5)})
    cur = pd.DataFrame({c: rng.normal(0.3 * i, 1, size=3000) for i, c in enumerate(ref.columns)})
    report = drift(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))
    frame = report.to_frame()
    assert list(frame["effect_size"]) == sorted(frame["effect_size"], reverse=True)
    assert frame["column"].iloc[0].endswith("_4")
    assert {"test", "statistic", "p_value", "threshold", "effect_size", "drifted"} <= set(
        frame.columns
    )
    text = report.render()
    assert "dataset drift" in text and all(len(line) <= 80 for line in text.splitlines())
    assert isinstance(report, DriftReport) and isinstance(report.columns[0], ColumnDrift)


def test_score_tests_and_per_column_choice() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(CATS, 5000, p=PROBS)})
    cur = pd.DataFrame({"x": rng.normal(0.5, 1, size=5000), "c": rng.choice(CATS, 5000)})
    report = drift(ref, cur, numeric_test="psi", column_tests={"c": "jensenshannon"})
    assert report["x"].test == "psi" and report["x"].p_value is None
    assert report["x"].threshold == 0.1 and report["x"].drifted
    assert report["c"].test == "jensenshannon" and report["c"].drifted
    assert not drift(ref, cur, numeric_test="wasserstein", thresholds={"wasserstein": 0.9})[
        "x"
    ].drifted


def test_dataset_versions_are_loaded_through_the_data_package() -> None:
    rng = np.random.default_rng(10)
    ref = ls.register_dataset("drift_ref", pd.DataFrame({"x": rng.normal(size=3000)}))
    cur = ls.register_dataset("drift_cur", pd.DataFrame({"x": rng.normal(1, 1, size=3000)}))
    assert drift(ref, cur)["x"].drifted


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 2}, "'alpha' must be a number strictly between 0 and 1"),
        ({"correction": "fdr"}, "'correction' must be one of bh, holm"),
        ({"numeric_test": "t"}, "'numeric_test' must be one of ks"),
        ({"thresholds": {"ks": 0.1}}, "'thresholds' must be keyed by"),
        ({"bogus": 1}, "unknown option"),
        ({"columns": ["nope"]}, "in neither the reference nor the current"),
        ({"columns": "x"}, "must be a list of column names"),
        ({"column_tests": {"x": "chi2"}}, "for a numeric column"),
        ({"config": {"alpha": 0.1}}, "'config' must be a DriftConfig"),
    ],
)
def test_bad_arguments_raise_invalid(kwargs: dict[str, object], match: str) -> None:
    df = pd.DataFrame({"x": np.arange(100, dtype=float)})
    with pytest.raises(Invalid, match=match):
        drift(df, df, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise_invalid() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(Invalid, match="'reference' must be a pandas DataFrame.*got list"):
        drift([1, 2], df)
    with pytest.raises(Invalid, match="'current' must be"):
        drift(df, None)
    assert DriftConfig().threshold("ks") == 0.05
