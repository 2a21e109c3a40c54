"""Profiles: known counts, JSON round trips, merging equals one pass, streaming in
bounded memory, and clear errors for bad input."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopstack.errors import Invalid
from loopstack.monitoring import ColumnProfile, Profile, drift, profile


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[:10] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "big_int": rng.integers(0, 10_000, size=n),
            "small_int": rng.integers(0, 5, size=n),
            "s": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.25,
            "ts": pd.date_range("2026-01-01", periods=n, freq="min"),
            "blob": [{"k": 1}] * n,
        }
    )


def _same_counts(a: Profile, b: Profile) -> None:
    """Counts, layouts and extremes exactly; float sums up to rounding order."""
    assert a.num_rows == b.num_rows and list(a.columns) == list(b.columns)
    for name, ca in a.columns.items():
        da, db = ca.to_dict(), b.columns[name].to_dict()
        for key in ("sum", "sum_sq", "bin_sums"):
            assert da.pop(key) == pytest.approx(db.pop(key), rel=1e-9, abs=1e-9), (name, key)
        assert da == db, name


def test_kinds_counts_and_layout_follow_the_data() -> None:
    df = _frame(10_000)
    p = profile(df)
    assert p.num_rows == 10_000
    kinds = {n: c.kind for n, c in p.columns.items()}
    assert kinds == {
        "x": "numeric",
        "big_int": "numeric",
        "small_int": "categorical",
        "s": "categorical",
        "flag": "categorical",
        "ts": "numeric",
        "blob": "unsupported",
    }
    x = p["x"]
    assert x.nulls == 10 and x.count == 9_990 and x.finite == 9_990
    assert x.edges is not None and x.edges.size == 257
    assert x.edges[0] == np.nanmin(df["x"]) and x.edges[-1] == np.nanmax(df["x"])
    assert x.counts.size == 258 and x.counts.sum() == 9_990
    assert x.counts[0] == 0 and x.counts[-1] == 0  # nothing outside its own range
    # quantile bins: each holds about 1/256 of the values
    assert np.all(np.abs(x.counts[1:-1] - 9_990 / 256) <= 2)
    assert x.mean == pytest.approx(np.nanmean(df["x"]))
    assert x.bin_sums.sum() == pytest.approx(x.sum) and x.sum == pytest.approx(np.nansum(df["x"]))
    assert x.std == pytest.approx(np.nanstd(df["x"]))
    # the cumulative counts are the exact empirical CDF at the edges
    values = df["x"].dropna().to_numpy()
    cdf = np.cumsum(x.counts)[1:-1]
    assert np.array_equal(cdf, np.searchsorted(np.sort(values), x.edges[1:], side="right"))
    s = p["s"]
    assert s.categories == ["a", "b", "c"] and s.other == 0
    assert list(s.counts[:3]) == [int((df["s"] == v).sum()) for v in "abc"]
    assert p["flag"].categories == [False, True]
    assert p["ts"].min == df["ts"].astype("int64").min()
    assert p["blob"].count == 10_000


def test_like_uses_the_reference_layout_and_counts_outside_it() -> None:
    ref = profile(pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50}))
    cur = profile(
        pd.DataFrame(
            {"x": [-5.0, 0.0, 50.0, 99.0, 120.0, np.inf], "c": ["a", "z", "z", "y", "a", None]}
        ),
        like=ref,
    )
    assert cur.layout_digest() == ref.layout_digest()
    x = cur["x"]
    assert x.counts[0] == 1 and x.counts[-1] == 1 and x.counts.sum() == 5
    assert x.non_finite == 1 and x.count == 6 and x.finite == 5
    c = cur["c"]
    assert c.categories == ["a", "b"] and c.other == 3 and c.nulls == 1
    assert c.other_top == {"z": 2, "y": 1}


def test_json_round_trip_and_merge_of_batches_equals_one_pass() -> None:
    df = _frame(20_000, seed=1)
    ref = profile(df)
    again = Profile.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert again == ref and again.layout_digest() == ref.layout_digest()
    table = pa.Table.from_pandas(df.drop(columns=["blob"]), preserve_index=False)
    parts = [profile(b, like=ref) for b in table.to_batches(max_chunksize=3_000)]
    merged = sum(parts[1:], parts[0])
    assert merged == sum(parts)
    one = profile(table, like=ref)
    _same_counts(merged, one)
    streamed = profile(iter(table.to_batches(max_chunksize=3_000)), like=ref)
    _same_counts(streamed, one)
    # like=ref on the reference's own data reproduces it
    _same_counts(profile(df, like=ref), ref)


def test_a_stream_without_like_takes_edges_from_its_first_batch() -> None:
    rng = np.random.default_rng(2)
    batches = [pa.table({"x": rng.normal(size=1000), "c": [f"v{i}"] * 1000}) for i in range(3)]
    p = profile(iter(batches))
    first = profile(batches[0])
    assert np.array_equal(p["x"].edges, first["x"].edges)
    assert p["x"].count == 3000 and p["x"].counts.sum() == 3000
    assert p["c"].categories == ["v0", "v1", "v2"]  # categories keep growing
    capped = profile(iter(batches), max_categories=2)
    assert capped["c"].categories == ["v0", "v1"] and capped["c"].other == 1000


def test_merge_refuses_other_layouts() -> None:
    a = profile(pd.DataFrame({"x": np.arange(10.0)}))
    b = profile(pd.DataFrame({"x": np.arange(5.0, 15.0)}))
    with pytest.raises(Invalid, match="different edges"):
        a.merge(b)
    with pytest.raises(Invalid, match="different columns"):
        a + profile(pd.DataFrame({"y": np.arange(10.0)}))
    with pytest.raises(Invalid, match="different kind"):
        a + profile(pd.DataFrame({"x": ["a"] * 10}))
    with pytest.raises(Invalid, match="expected a Profile"):
        a.merge({"x": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": "a,b"}, "'data' must be"),
        ({"data": 3}, "'data' must be"),
        ({"data": [pa.table({"x": [1.0]}), {"x": 1}]}, "item 1 of 'data'"),
        ({"data": pd.DataFrame({"x": [1.0]}), "columns": ["y"]}, "'columns' names 'y'"),
        ({"data": pd.DataFrame({"x": [1.0]}), "columns": "x"}, "list of column names"),
        ({"data": pd.DataFrame({"x": [1.0]}), "bins": 1}, "'bins' must be"),
        ({"data": pd.DataFrame({"x": [1.0]}), "max_categories": 0}, "'max_categories'"),
        ({"data": pd.DataFrame({"x": [1.0]}), "like": {"x": 1}}, "'like' must be a Profile"),
        ({"data": [pa.table({"x": [1.0]}), pa.table({"y": [1.0]})]}, "later batch lacks"),
    ],
)
def test_bad_input_is_invalid(kwargs: dict, match: str) -> None:
    data = kwargs.pop("data")
    with pytest.raises(Invalid, match=match):
        profile(data, **kwargs)


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(Invalid, match="Profile.from_dict"):
        Profile.from_dict({"rows": 1})
    with pytest.raises(Invalid, match="ColumnProfile.from_dict"):
        ColumnProfile.from_dict({"name": "x"})


def test_dataset_versions_are_profiled(ls_home: object) -> None:
    import loopstack as ls

    df = _frame(5_000, seed=3).drop(columns=["blob"])
    dv = ls.register_dataset("orders", df)
    ref = profile(dv)
    _same_counts(ref, profile(df))
    _same_counts(profile(dv, like=ref), ref)  # streamed from its Parquet file


def _batches(total: int, size: int, seed: int) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    for _ in range(total // size):
        yield pa.record_batch({f"f{i}": rng.normal(i, 1 + i, size=size) for i in range(4)})


@pytest.mark.slow
def test_a_10m_row_window_streams_in_bounded_memory() -> None:
    total, size = 10_000_000, 500_000
    ref = profile(next(_batches(size, size, seed=0)))
    data_bytes = total * 4 * 8
    tracemalloc.start()
    try:
        window = profile(_batches(total, size, seed=1), like=ref)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"10M rows x 4 floats: {data_bytes / 1e6:.0f} MB of data, traced peak {peak / 1e6:.1f} MB"
    )
    assert window.num_rows == total
    assert all(c.counts.sum() == total for c in window.columns.values())
    batch_bytes = size * 4 * 8
    assert peak < 3 * batch_bytes < data_bytes / 6  # a batch and its temporaries, not the window
    merged = sum(profile(b, like=ref) for b in _batches(total, size, seed=1))
    _same_counts(merged, window)


def test_other_dtypes_nullable_ints_categoricals_dates_decimals_and_mixed_objects() -> None:
    import datetime as dt
    from decimal import Decimal

    n = 3000
    rng = np.random.default_rng(6)
    ints = pd.array(rng.integers(0, 1000, size=n), dtype="Int64")
    ints[:6] = pd.NA
    df = pd.DataFrame(
        {
            "ni": ints,
            "cat": pd.Categorical(rng.choice(["a", "b"], size=n)),
            "tz": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "dec": [Decimal(i) / 1000 for i in range(n)],
            "day": [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "mixed": [1, "a", None] * (n // 3),
        }
    )
    p = profile(df)
    got = {c.name: (c.kind, c.dtype, c.count, c.nulls) for c in p.columns.values()}
    assert got["ni"] == ("numeric", "int64", n - 6, 6)
    assert got["cat"] == ("categorical", "string", n, 0)
    assert got["tz"][0] == "numeric" and got["dec"][0] == "numeric" and got["day"][0] == "numeric"
    assert got["mixed"] == ("unsupported", "object", 2 * n // 3, n // 3)
    assert p["dec"].min == 0.0 and p["dec"].max == pytest.approx(2.999)
    assert p["tz"].max - p["tz"].min == pytest.approx((n - 1) * 3600e6)  # microseconds
    report = drift(p, df)
    assert report.drifted_columns == [] and report["mixed"].status == "unsupported"
    assert {c.column for c in report.columns if c.status == "ok"} == {
        "ni",
        "cat",
        "tz",
        "dec",
        "day",
    }
