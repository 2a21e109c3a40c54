"""Production data quality from profiles, with planted faults of known size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopstack.errors import Invalid
from loopstack.monitoring import QualityReport, profile, quality

N = 10_000


def _data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 10.0, size=N),
            "age": rng.integers(18, 90, size=N),
            "country": rng.choice(["de", "fr", "it"], size=N),
            "legacy": rng.normal(size=N),
        }
    )


def test_clean_current_data_has_no_issues() -> None:
    ref_df, cur_df = _data(0), _data(1)
    lo = float(ref_df["amount"].min())
    cur_df["amount"] = cur_df["amount"].clip(lower=lo, upper=50.0)  # inside the reference
    ref = profile(ref_df)
    cur = profile(cur_df, like=ref)
    report = quality(ref, cur)
    assert isinstance(report, QualityReport)
    assert report.ok, report.issues
    assert report["amount"].out_of_range_share == 0.0
    assert report["country"].unseen_count == 0


def test_planted_faults_are_found_with_their_sizes() -> None:
    ref_df = _data(0)
    ref = profile(ref_df)
    cur_df = _data(2).drop(columns=["legacy"])
    lo, hi = float(ref_df["amount"].min()), float(ref_df["amount"].max())
    cur_df["amount"] = cur_df["amount"].clip(lo, hi).where(np.arange(N) >= 1500)  # 15% nulls
    cur_df.loc[:299, "amount"] = hi + 1.0 + np.arange(300)  # 3% above max (replaces nulls)
    cur_df.loc[300:399, "age"] = 5  # 1% below min
    cur_df.loc[400:899, "country"] = np.where(np.arange(500) < 400, "xx", "yy")  # 5% unseen
    cur_df["session"] = "s"
    cur = profile(cur_df, like=ref)
    report = quality(ref, cur)
    amount, age, country = report["amount"], report["age"], report["country"]
    assert amount.null_rate_reference == 0.0
    assert amount.null_rate_current == pytest.approx(0.12)
    assert amount.above_max == 300 and amount.below_min == 0
    assert amount.out_of_range_share == pytest.approx(300 / (N - 1200))
    assert age.below_min == 100 and age.out_of_range_share == pytest.approx(0.01)
    assert country.unseen_count == 500 and country.unseen_share == pytest.approx(0.05)
    assert country.unseen_top == [["xx", 400], ["yy", 100]]
    kinds = {(i["column"], i["kind"]) for i in report.issues}
    assert kinds == {
        ("amount", "null_rate"),
        ("amount", "out_of_range"),
        ("country", "unseen_categories"),
        ("legacy", "missing_column"),
        ("session", "extra_column"),
    }  # age's 1% is at the tolerance, not above it
    assert report["legacy"].status == "missing_in_current"
    assert report["session"].status == "extra_in_current"
    assert all(set(i) == {"column", "kind", "value", "message"} for i in report.issues)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["num_rows_current"] == N and len(d["issues"]) == 5
    frame = report.to_frame()
    assert list(frame["column"]) == ["amount", "age", "country", "legacy", "session"]
    text = report.render()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "amount" in text and "5 issue(s)" in text
    strict = quality(ref, cur, out_of_range_tolerance=0.005)
    assert ("age", "out_of_range") in {(i["column"], i["kind"]) for i in strict.issues}


def test_changed_types_infinities_and_empty_windows() -> None:
    ref = profile(_data(0))
    cur_df = _data(3)
    cur_df["age"] = cur_df["age"].astype(str)
    cur_df.loc[:9, "legacy"] = np.inf
    report = quality(ref, profile(cur_df, like=ref))
    kinds = {(i["column"], i["kind"]) for i in report.issues}
    assert ("age", "type_changed") in kinds and ("legacy", "non_finite") in kinds
    assert report["age"].status == "kind_changed"
    empty = quality(ref, profile([], like=ref))
    assert {i["kind"] for i in empty.issues} == {"empty"}


def test_schemas_mlflow_signature_and_dtype_maps() -> None:
    ref = profile(_data(0))
    cur = profile(_data(4), like=ref)
    signature = {
        "inputs": json.dumps(
            [
                {"name": "amount", "type": "double"},
                {"name": "age", "type": "double"},  # integers fit a double
                {"name": "country", "type": "long"},
                {"name": "income", "type": "double"},
            ]
        )
    }
    kinds = {(i["column"], i["kind"]) for i in quality(ref, cur, schema=signature).issues}
    assert kinds == {("country", "schema_type"), ("income", "schema_missing")}
    dtypes = {"amount": "float64", "age": "int64", "country": "object", "legacy": "bool"}
    kinds = {(i["column"], i["kind"]) for i in quality(ref, cur, schema=dtypes).issues}
    assert kinds == {("legacy", "schema_type")}


def test_bad_input_is_invalid() -> None:
    ref = profile(_data(0))
    # a table is profiled like the reference; anything else is refused
    assert quality(ref, _data(1)).to_dict() == quality(ref, profile(_data(1), like=ref)).to_dict()  # type: ignore[arg-type]
    with pytest.raises(Invalid, match="'current' must be a Profile"):
        quality(ref, None)  # type: ignore[arg-type]
    with pytest.raises(Invalid, match="'schema' must be"):
        quality(ref, ref, schema=["amount"])
    with pytest.raises(Invalid, match="list of"):
        quality(ref, ref, schema={"inputs": [{"name": "amount"}]})
