"""Every check type, passing and failing, with the observed value and offending rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from loopstack.data import CheckResult, Suite


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 5],
            "age": [30.0, None, 41.0, 250.0, 25.0, 25.0],
            "country": ["fr", "de", "fr", "xx", "de", "de"],
            "email": ["a@x.io", "b@x.io", "bad", "c@x.io", None, None],
            "label": [1, None, 0, None, 1, 1],
            "ts": pd.to_datetime(
                ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04", "2024-05-05", "2024-05-05"]
            ),
        }
    )


def run(df: pd.DataFrame | pa.Table, check: dict[str, Any]) -> CheckResult:
    report = Suite("t", [check]).validate(df, record=False)
    assert len(report.results) == 1
    return report.results[0]


def test_schema(df: pd.DataFrame) -> None:
    ok = run(
        df,
        {
            "type": "schema",
            "columns": {"id": "int64", "age": "float", "country": "string", "ts": "timestamp"},
        },
    )
    assert ok.passed, ok.message
    bad = run(df, {"type": "schema", "columns": {"id": "string", "missing_col": "int64"}})
    assert not bad.passed
    assert bad.observed["missing"] == ["missing_col"]
    assert bad.observed["wrong_type"] == {"id": "int64"}
    strict = run(
        df[["id", "age"]], {"type": "schema", "columns": {"id": "integer"}, "allow_extra": False}
    )
    assert not strict.passed and strict.observed["unexpected"] == ["age"]


def test_null_rate(df: pd.DataFrame) -> None:
    assert run(df, {"type": "null_rate", "column": "age", "max": 0.2}).passed
    bad = run(df, {"type": "null_rate", "column": "email", "max": 0.2})
    assert not bad.passed
    assert bad.observed == pytest.approx(2 / 6)
    assert bad.failing_count == 2
    assert [r["id"] for r in bad.failing_rows] == [5, 5]


def test_range(df: pd.DataFrame) -> None:
    assert run(df, {"type": "range", "column": "age", "min": 0, "max": 250}).passed
    bad = run(df, {"type": "range", "column": "age", "min": 0, "max": 250, "max_inclusive": False})
    assert not bad.passed
    assert bad.observed == {"out_of_range": 1, "min": 25.0, "max": 250.0}
    assert bad.failing_rows == [
        {
            "id": 4,
            "age": 250.0,
            "country": "xx",
            "email": "c@x.io",
            "label": None,
            "ts": "2024-05-04T00:00:00",
        }
    ]
    low = run(df, {"type": "range", "column": "age", "min": 25, "min_inclusive": False})
    assert low.failing_count == 2
    assert run(
        df, {"type": "range", "column": "ts", "min": "2024-05-01", "max": "2024-05-05"}
    ).passed


def test_allowed_values(df: pd.DataFrame) -> None:
    assert run(
        df, {"type": "allowed_values", "column": "country", "values": ["fr", "de", "xx"]}
    ).passed
    bad = run(df, {"type": "allowed_values", "column": "country", "values": ["fr", "de"]})
    assert not bad.passed
    assert bad.observed == {"unexpected": 1, "unexpected_values": ["xx"]}
    assert bad.failing_rows[0]["id"] == 4
    ints = run(df, {"type": "allowed_values", "column": "id", "values": [1, 2, 3, 4]})
    assert ints.failing_count == 2


def test_pattern(df: pd.DataFrame) -> None:
    ok = run(
        df.dropna(subset=["email"]).query("email != 'bad'"),
        {"type": "pattern", "column": "email", "regex": r"[a-z]+@x\.io"},
    )
    assert ok.passed
    bad = run(df, {"type": "pattern", "column": "email", "regex": r"[a-z]+@x\.io"})
    assert not bad.passed and bad.observed == {"not_matching": 1}  # nulls are not judged
    assert bad.failing_rows[0]["email"] == "bad"
    assert run(df, {"type": "pattern", "column": "id", "regex": r"\d"}).passed  # numbers as text


def test_unique_and_duplicate_rows(df: pd.DataFrame) -> None:
    assert run(df.iloc[:5], {"type": "unique", "columns": ["id"]}).passed
    bad = run(df, {"type": "unique", "columns": ["id"]})
    assert not bad.passed
    assert bad.observed == {"duplicate_rows": 2, "duplicate_keys": 1}
    assert [r["id"] for r in bad.failing_rows] == [5, 5]
    pair = run(df, {"type": "unique", "columns": ["id", "country"]})
    assert pair.observed["duplicate_keys"] == 1 and len(pair.failing_rows) == 2
    assert run(df, {"type": "unique", "columns": ["country", "ts"]}).failing_count == 2
    dup = run(df, {"type": "duplicate_rows"})
    assert not dup.passed and dup.observed == {"duplicate_rows": 1}
    assert run(df, {"type": "duplicate_rows", "max": 1}).passed


def test_row_count(df: pd.DataFrame) -> None:
    assert run(df, {"type": "row_count", "min": 6, "max": 6}).passed
    bad = run(df, {"type": "row_count", "min": 10})
    assert not bad.passed and bad.observed == 6
    assert bad.message == "6 rows, expected at least 10"
    assert run(df, {"type": "row_count", "max": 2}).message == "6 rows, expected at most 2"
    both = run(df, {"type": "row_count", "min": 1, "max": 2})
    assert both.message == "6 rows, expected between 1 and 2"


def test_cardinality(df: pd.DataFrame) -> None:
    assert run(
        df, {"type": "cardinality", "column": "country", "reference": 3, "max_change": 0}
    ).passed
    bad = run(df, {"type": "cardinality", "column": "country", "reference": 10, "max_change": 0.5})
    assert not bad.passed
    assert bad.observed == {"distinct": 3, "relative_change": 0.7}


def test_freshness(df: pd.DataFrame) -> None:
    now = "2024-05-05T12:00:00"
    ok = run(df, {"type": "freshness", "column": "ts", "max_age": "1d", "now": now})
    assert ok.passed and ok.observed["age_seconds"] == 12 * 3600
    bad = run(df, {"type": "freshness", "column": "ts", "max_age": "6h", "now": now})
    assert not bad.passed and "43200s old" in bad.message
    stale = df.assign(ts=df.ts - pd.Timedelta(days=400))
    assert not run(stale, {"type": "freshness", "column": "ts", "max_age": 86400}).passed
    # a zone-aware column (as Arrow: pandas 3 warns when pyarrow converts one)
    aware = pa.table({"ts": pa.array([dt.datetime.now(dt.UTC)], pa.timestamp("us", "UTC"))})
    assert run(aware, {"type": "freshness", "column": "ts", "max_age": "1h"}).passed


def test_label_availability(df: pd.DataFrame) -> None:
    assert run(df, {"type": "label_availability", "column": "label", "min": 0.6}).passed
    bad = run(df, {"type": "label_availability", "column": "label", "min": 0.9})
    assert not bad.passed
    assert bad.observed == pytest.approx(4 / 6) and bad.failing_count == 2
    assert {r["id"] for r in bad.failing_rows} == {2, 4}


def test_distribution_numeric_and_categorical() -> None:
    ref = pd.DataFrame({"x": [float(i % 10) for i in range(1000)], "c": ["a", "b"] * 500})
    edges = [float(i) for i in range(10)]
    counts = [100] * 8 + [200]  # the last bin [8, 9] holds 8s and 9s
    numeric = {
        "type": "distribution",
        "column": "x",
        "edges": edges,
        "counts": counts,
        "max_psi": 0.1,
    }
    same = run(ref, numeric)
    assert same.passed and same.observed == {"psi": 0.0}
    shifted = run(ref.assign(x=ref.x + 5), numeric)
    assert not shifted.passed and shifted.observed["psi"] > 1
    cat = {
        "type": "distribution",
        "column": "c",
        "categories": [["a", 500], ["b", 500]],
        "other": 0,
        "max_psi": 0.1,
    }
    assert run(ref, cat).passed
    skewed = run(ref.assign(c=["a"] * 900 + ["z"] * 100), cat)
    assert not skewed.passed and "PSI" in skewed.message


def test_check_on_a_missing_column_fails_instead_of_crashing(df: pd.DataFrame) -> None:
    report = Suite(
        "t",
        [
            {"type": "null_rate", "column": "nope", "max": 0},
            {"type": "range", "column": "country", "min": 0},
            {"type": "freshness", "column": "age"},
            {"type": "schema", "columns": {"nope": "int64"}},
        ],
    ).validate(df, record=False)
    missing, mistyped, wrong, schema = report.results
    assert not mistyped.passed and "cannot evaluate" in mistyped.message
    assert not missing.passed and missing.observed == {"missing": ["nope"]}
    assert not wrong.passed and "freshness applies to" in wrong.message
    assert not schema.passed and schema.observed["missing"] == ["nope"]
