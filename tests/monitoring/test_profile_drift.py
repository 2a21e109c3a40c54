"""Drift from profiles against the exact path: the same verdicts on synthetic drifts of
known size, statistics close, and the same statuses for odd columns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from loopstack.errors import Invalid
from loopstack.monitoring import drift, profile
from loopstack.monitoring._stats import numeric_two_sample

N = 100_000
PROBS = np.array([0.4, 0.3, 0.2, 0.1])
CATS = np.array(["a", "b", "c", "d"])


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    return pd.DataFrame({"x": rng.normal(size=N), "c": rng.choice(CATS, size=N, p=PROBS)})


def _current(kind: str, size: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=N)
    if kind == "shift":
        x = x + size
    elif kind == "scale":
        x = x * (1 + size)
    probs = PROBS + (np.array([-size, 0, 0, size]) if kind == "tv" else 0.0)
    return pd.DataFrame({"x": x, "c": rng.choice(CATS, size=N, p=probs)})


CASES = [("none", 0.0)] + [("shift", s) for s in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)]
CASES += [("scale", s) for s in (0.05, 0.2, 0.5)] + [("tv", t) for t in (0.02, 0.05, 0.2)]


@pytest.mark.parametrize(("kind", "size"), CASES)
def test_profile_verdicts_equal_the_exact_path(
    reference: pd.DataFrame, kind: str, size: float
) -> None:
    current = _current(kind, size, seed=int(size * 1000) + 7)
    ref_profile = profile(reference)
    exact = drift(reference, current)
    binned = drift(ref_profile, current)
    both = drift(ref_profile, profile(current, like=ref_profile))
    assert binned.to_dict() == both.to_dict()
    for name in ("x", "c"):
        e, b = exact[name], binned[name]
        assert (e.drifted, e.test, e.effect_measure) == (b.drifted, b.test, b.effect_measure)
        assert (e.n_reference, e.n_current) == (b.n_reference, b.n_current)
        if name == "c":  # fewer categories than max_categories: the very same numbers
            assert b.statistic == pytest.approx(e.statistic)
            assert b.effect_size == pytest.approx(e.effect_size)
            assert b.metrics["jensenshannon"] == pytest.approx(e.metrics["jensenshannon"])
            continue
        # the binned D is a lower bound, within a fraction of a bin's mass
        assert e.statistic - 0.004 <= b.statistic <= e.statistic + 1e-12
        # Wasserstein from the bins' counts and sums: exact unless the CDFs cross in a bin
        assert b.effect_size == pytest.approx(e.effect_size, rel=0.02, abs=5e-4)
        assert b.metrics["wasserstein"] <= e.metrics["wasserstein"] + 1e-9
        assert b.metrics["psi"] == pytest.approx(e.metrics["psi"], rel=0.05, abs=2e-4)
        assert math.log10(max(b.p_value, 1e-300)) == pytest.approx(
            math.log10(max(e.p_value, 1e-300)), rel=0.3, abs=0.3
        )
    assert exact.drifted_columns == binned.drifted_columns
    truth = {"none": [], "shift": ["x"], "scale": ["x"], "tv": ["c"]}[kind]
    if kind == "shift" and size < 0.025:
        truth = []  # below the practical effect at this n
    if kind == "tv" and size < 0.025:
        truth = []
    assert binned.drifted_columns == truth


def test_the_binned_ks_is_a_lower_bound_and_matches_on_discrete_data() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.integers(0, 500, size=20_000), rng.integers(5, 505, size=20_000)
    ref = profile(pd.DataFrame({"v": a}))
    exact = numeric_two_sample(a.astype(float), b.astype(float))
    col = drift(ref, pd.DataFrame({"v": b}), require_effect=False)["v"]
    assert col.statistic == pytest.approx(exact["ks_statistic"], abs=2e-3)
    assert col.statistic <= exact["ks_statistic"] + 1e-12


def test_score_tests_and_options_work_on_profiles(reference: pd.DataFrame) -> None:
    current = _current("shift", 0.5, seed=3)
    ref = profile(reference)
    report = drift(ref, current, numeric_test="psi", categorical_test="jensenshannon")
    assert report["x"].test == "psi" and report["x"].p_value is None and report["x"].drifted
    assert report["c"].test == "jensenshannon" and not report["c"].drifted
    only = drift(ref, current, columns=["x"], column_tests={"x": "wasserstein"})
    assert [c.column for c in only.columns] == ["x"] and only["x"].test == "wasserstein"
    assert [c.column for c in drift(ref, current, exclude=["x"]).columns] == ["c"]


def test_statuses_match_the_exact_path() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "const": np.ones(n),
            "const_moved": np.ones(n),
            "empty": [None] * n,
            "only_ref": rng.normal(size=n),
            "typed": rng.normal(size=n),
            "dicts": [{"k": 1}] * n,
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "const": np.ones(n),
            "const_moved": np.full(n, 2.0),
            "empty": [None] * n,
            "only_cur": rng.normal(size=n),
            "typed": rng.choice(CATS, size=n),
            "dicts": [{"k": 2}] * n,
        }
    )
    exact = drift(ref, cur)
    binned = drift(profile(ref), cur)
    for name in ref.columns.union(cur.columns):
        e, b = exact[name], binned[name]
        assert (e.status, e.drifted) == (b.status, b.drifted), name
    assert binned["const_moved"].effect_size == math.inf
    assert binned["x"].null_rate_current == 0.0


def test_a_profile_with_its_own_layout_is_refused() -> None:
    rng = np.random.default_rng(5)
    a = profile(pd.DataFrame({"x": rng.normal(size=1000)}))
    b = profile(pd.DataFrame({"x": rng.normal(size=1000)}))
    with pytest.raises(Invalid, match="like=<the reference profile>"):
        drift(a, b)
    with pytest.raises(Invalid, match="'columns' names 'nope'"):
        drift(a, a, columns=["nope"])
    with pytest.raises(Invalid, match="'data' must be"):
        drift(a, [1, 2, 3])
