"""W4's data generator (bench/_w4_data.py) injects drifts of the sizes it states, and
loopstack's drift() catches the big ones on a small instance without false alarms.

The benchmark's claims rest on the generator: a "0.05 sd shift" column must have moved
by 0.05 reference standard deviations, a "TV 0.05" column by that total variation, and
the 37 undrifted columns not at all. Evidently is not needed here.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from loopstack.monitoring import drift

ROWS = 20_000


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "_w4_data.py"
    spec = importlib.util.spec_from_file_location("_w4_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_w4_data"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


w4 = _load()


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, list]:
    return w4.generate(ROWS, seed=0)


def _tv(a: pd.Series, b: pd.Series) -> float:
    p, q = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return float(0.5 * p.sub(q, fill_value=0).abs().sum())


def test_layout_and_the_13_drifts(frames) -> None:
    ref, cur, drifts = frames
    assert ref.shape == cur.shape == (ROWS, 50)
    assert list(ref.columns) == w4.NUMERIC + w4.CATEGORICAL
    assert all(pd.api.types.is_numeric_dtype(ref[c]) for c in w4.NUMERIC)
    assert not any(pd.api.types.is_numeric_dtype(ref[c]) for c in w4.CATEGORICAL)
    kinds = sorted((d.kind, d.size) for d in drifts)
    expected = (
        [("mean_shift", s) for s in w4.SHIFTS]
        + [("scale", s) for s in w4.SCALES]
        + [("tv", t) for t in w4.TVS]
    )
    assert kinds == sorted(expected) and len({d.column for d in drifts}) == 13
    assert sum(d.column in w4.NUMERIC for d in drifts) == 10


def test_same_seed_same_frames_and_shares_do_not_depend_on_rows() -> None:
    a, b, _ = w4.generate(2_000, seed=3)
    c, d, _ = w4.generate(2_000, seed=3)
    pd.testing.assert_frame_equal(a, c)
    pd.testing.assert_frame_equal(b, d)
    small, _, _ = w4.generate(500, seed=3)
    assert set(small["cat_8"].unique()) <= set(a["cat_8"].unique())


def test_realised_drift_sizes_match_the_stated_ones(frames) -> None:
    ref, cur, drifts = frames
    se = math.sqrt(2 / ROWS)  # standard error of a mean difference in sds
    for d in drifts:
        a, b = ref[d.column], cur[d.column]
        if d.kind == "mean_shift":
            shift = (b.mean() - a.mean()) / a.std()
            assert shift == pytest.approx(d.size, abs=4 * se), d.label
            assert b.std() / a.std() == pytest.approx(1.0, abs=4 * se), d.label
        elif d.kind == "scale":
            assert b.std() / a.std() == pytest.approx(1 + d.size, abs=4 * se * (1 + d.size))
            assert abs(b.mean() - a.mean()) / a.std() < 4 * se * (1 + d.size), d.label
        else:
            assert _tv(a, b) == pytest.approx(d.size, abs=0.012), d.label


def test_undrifted_columns_do_not_move(frames) -> None:
    ref, cur, drifts = frames
    drifted = {d.column for d in drifts}
    se = math.sqrt(2 / ROWS)
    for col in w4.NUMERIC:
        if col not in drifted:
            a, b = ref[col], cur[col]
            assert abs(b.mean() - a.mean()) / a.std() < 4 * se, col
            assert a.isna().mean() == pytest.approx(b.isna().mean(), abs=0.01), col
    for col in w4.CATEGORICAL:
        if col not in drifted:
            # sampling noise only: E|p_hat - q_hat| is about sqrt(2 p (1 - p) / n) sqrt(2 / pi)
            p = ref[col].value_counts(normalize=True).to_numpy()
            noise = 0.5 * np.sum(np.sqrt(2 * p * (1 - p) / ROWS)) * math.sqrt(2 / math.pi)
            assert _tv(ref[col], cur[col]) < 2 * noise, col


def test_moved_shares_is_exactly_the_stated_tv() -> None:
    p = np.array([0.5, 0.3, 0.2])
    q = w4.moved_shares(p, 0.2)
    assert q.sum() == pytest.approx(1.0)
    assert 0.5 * np.abs(p - q).sum() == pytest.approx(0.2)
    with pytest.raises(ValueError):
        w4.moved_shares(p, 0.6)


def test_loopstack_catches_the_big_drifts_and_no_undrifted_column(frames) -> None:
    ref, cur, drifts = frames
    report = drift(ref, cur)
    flagged = {c.column for c in report.columns if c.drifted}
    # at 20k rows: mean shifts >= 0.1 sd, scale changes >= 20 %, category moves >= TV 0.05
    big = [d for d in drifts if d.size >= (0.05 if d.kind == "tv" else 0.1)]
    assert len(big) == 8
    missed = [d.label for d in big if d.column not in flagged]
    assert not missed
    assert flagged <= {d.column for d in drifts}
    # the test alone also flags more, never an undrifted column here
    alone = {c.column for c in drift(ref, cur, require_effect=False).columns if c.drifted}
    assert flagged <= alone <= {d.column for d in drifts}


def test_merged_ks_is_exact_with_ties_and_a_shared_scratch() -> None:
    """The merge-based KS / Wasserstein (one Scratch reused across columns of different
    sizes, as drift() does) equals scipy's on tied integer data and on floats."""
    stats = pytest.importorskip("scipy.stats")
    from loopstack.monitoring._stats import Scratch, numeric_two_sample

    rng = np.random.default_rng(7)
    scratch = Scratch()
    cases = [
        (rng.poisson(5, 4000).astype(float), rng.poisson(5.2, 3000).astype(float)),
        (rng.normal(size=50_000), rng.normal(0.01, 1, 40_000)),
        (rng.integers(0, 3, 700).astype(float), rng.integers(0, 3, 90).astype(float)),
        (np.array([1.0]), np.array([1.0, 2.0])),
    ]
    for a, b in cases:
        before = a.copy()
        ours = numeric_two_sample(a, b, scratch=scratch)
        alone = numeric_two_sample(a, b)
        assert ours == alone
        assert np.array_equal(a, before)  # the inputs are left as they were
        assert ours["ks_statistic"] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
        assert ours["wasserstein"] == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)
        assert ours["reference_std"] == pytest.approx(a.std(), rel=1e-12)
