"""Profiles on small data, checked against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from loopstack.data import profile_table
from loopstack.data._sources import to_arrow


def test_numeric_profile_is_exact() -> None:
    # values 1..4 and a null: mean 2.5, sample std sqrt(5/3), p50 2.5, p25 1.75 (linear)
    prof = profile_table(to_arrow(pd.DataFrame({"x": [1.0, 2.0, None, 3.0, 4.0]})))
    x = prof["columns"]["x"]
    assert prof["num_rows"] == 5 and prof["num_columns"] == 1
    assert (x["count"], x["nulls"], x["distinct"]) == (4, 1, 4)
    assert (x["min"], x["max"], x["mean"]) == (1.0, 4.0, 2.5)
    assert x["std"] == pytest.approx(math.sqrt(5 / 3))
    assert x["quantiles"]["p50"] == pytest.approx(2.5)
    assert x["quantiles"]["p25"] == pytest.approx(1.75)
    assert x["quantiles"]["p75"] == pytest.approx(3.25)
    assert x["quantiles"]["p01"] == pytest.approx(1.03)
    assert x["quantiles"]["p99"] == pytest.approx(3.97)
    hist = x["histogram"]
    assert hist["edges"][0] == 1.0 and hist["edges"][-1] == 4.0 and len(hist["edges"]) == 11
    assert sum(hist["counts"]) == 4
    assert hist["counts"][0] == 1 and hist["counts"][-1] == 1  # 1 in the first bin, 4 in the last


def test_categorical_bool_and_time_profiles() -> None:
    df = pd.DataFrame(
        {
            "s": ["b", "a", "b", None, "b"],
            "f": [True, False, True, True, None],
            "t": pd.to_datetime(["2024-01-02", None, "2024-01-01", "2024-01-03", "2024-01-02"]),
        }
    )
    cols = profile_table(to_arrow(df))["columns"]
    assert cols["s"]["top"] == [{"value": "b", "count": 3}, {"value": "a", "count": 1}]
    assert (cols["s"]["count"], cols["s"]["nulls"], cols["s"]["distinct"]) == (4, 1, 2)
    assert "histogram" not in cols["s"]
    assert cols["f"]["top"] == [{"value": True, "count": 3}, {"value": False, "count": 1}]
    assert cols["f"]["mean"] == 0.75
    assert cols["t"]["min"].startswith("2024-01-01") and cols["t"]["max"].startswith("2024-01-03")
    assert cols["t"]["nulls"] == 1


def test_integer_histogram_counts_every_value() -> None:
    df = pd.DataFrame({"n": list(range(10)) * 3})
    n = profile_table(to_arrow(df))["columns"]["n"]
    assert n["histogram"]["counts"] == [3] * 10
    assert n["dtype"] == "int64" and n["kind"] == "integer"
