"""Suites: inference, drift, serialisation, bad suite files, the gate's message, 1M rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.data import Suite
from loopstack.errors import Invalid, NotFound, ValidationFailed


def reference(n: int = 5000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": np.arange(n),
            "amount": rng.gamma(2.0, 20.0, n),
            "plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
            "age": rng.integers(18, 80, n),
            "note": np.where(rng.random(n) < 0.05, None, rng.integers(0, 2000, n).astype(str)),
        }
    )


def test_inferred_suite_passes_the_reference_and_fails_a_drifted_copy() -> None:
    ref = reference()
    suite = ls.infer_suite(ref, name="signups")
    types = {c.type for c in suite.checks}
    assert types >= {
        "schema",
        "null_rate",
        "range",
        "allowed_values",
        "unique",
        "distribution",
        "cardinality",
    }
    assert suite.validate(ref, record=False).passed
    assert suite.validate(reference(seed=2), record=False).passed  # a fresh sample, same law
    drifted = ref.assign(
        amount=ref.amount * 1.8, plan=np.where(np.arange(len(ref)) % 2 == 0, "pro", ref.plan)
    )
    report = suite.validate(drifted, record=False)
    failed = {r.name for r in report.failures}
    assert {"range(amount)", "distribution(amount)", "distribution(plan)"} <= failed
    broken = ref.assign(plan=ref.plan.replace({"team": "enterprise"}), user_id=0)
    failed = {r.name for r in suite.validate(broken, record=False).failures}
    assert {"allowed_values(plan)", "unique(user_id)"} <= failed


def test_suite_round_trips_through_json(tmp_path: Path) -> None:
    suite = ls.infer_suite(reference(), name="signups")
    path = suite.save(tmp_path / "suite.json")
    loaded = Suite.load(path)
    assert loaded.to_dict() == suite.to_dict()
    assert json.loads(path.read_text())["name"] == "signups"
    assert Suite.from_dict(suite.to_dict()).to_dict() == suite.to_dict()


def test_unknown_check_type_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="unknown check type 'nul_rate'.*allowed_values.*unique"):
        Suite.from_dict({"name": "s", "checks": [{"type": "nul_rate", "column": "a"}]})
    with pytest.raises(Invalid, match="has no parameter 'maximum'"):
        Suite("s", [{"type": "null_rate", "column": "a", "maximum": 0.1}])
    with pytest.raises(Invalid, match="fraction between 0 and 1"):
        Suite("s", [{"type": "null_rate", "column": "a", "max": 3}])
    with pytest.raises(Invalid, match="not a valid regular expression"):
        Suite("s", [{"type": "pattern", "column": "a", "regex": "("}])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(Invalid, match="not valid JSON"):
        Suite.load(bad)
    with pytest.raises(NotFound, match="no suite file"):
        Suite.load(tmp_path / "missing.json")


def test_raise_for_failures_names_every_failing_check() -> None:
    df = pd.DataFrame({"a": [1, None, 3], "b": ["x", "y", "z"]})
    suite = Suite(
        "gate",
        [
            {"type": "null_rate", "column": "a", "max": 0},
            {"type": "allowed_values", "column": "b", "values": ["x"]},
            {"type": "row_count", "min": 1},
        ],
    )
    report = suite.validate(df, record=False)
    assert not report.passed and len(report.failures) == 2
    with pytest.raises(ValidationFailed) as err:
        report.raise_for_failures()
    message = str(err.value)
    assert "validation suite 'gate' failed 2 of 3 checks" in message
    assert "null_rate(a)" in message and "allowed_values(b)" in message
    assert isinstance(err.value, Invalid) and err.value.status_code == 422
    ok = Suite("gate", [{"type": "row_count", "min": 1}]).validate(df, record=False)
    assert ok.raise_for_failures() is ok
    assert "✗ null_rate(a)" in str(report)


def test_validates_a_million_rows() -> None:
    # Speed is measured in bench/validation_bench.py, not asserted here.
    n = 1_000_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"id": np.arange(n), "x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n)}
    )
    suite = ls.infer_suite(df)
    report = suite.validate(df, record=False)
    assert report.num_rows == n
    assert report.passed, str(report)
