"""Validation: 10M rows x 20 columns, loopstack's suite beside an equivalent pandera schema.

    python bench/validation_bench.py [--rows 10000000] [--repeat 3]

Both sides check the same rules over the same seeded data: a null-rate bound on every
column, ranges on the 10 numeric columns, allowed values on 5 categoricals, a regex
on 2 text columns, uniqueness of the id, a row-count bound. loopstack runs on the Arrow
table (one DuckDB aggregate pass plus a group-by for the id); pandera runs on the pandas
DataFrame (its natural input), lazily so it collects every failure as loopstack does.
Data preparation is not timed on either side. Nothing is stored (``record=False``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def make_data(rows: int, seed: int = 7):  # noqa: ANN201
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"id": np.arange(rows, dtype=np.int64)}
    for i in range(10):
        x = rng.normal(100.0 * i, 10.0 + i, rows)
        x[rng.random(rows) < 0.01] = np.nan
        cols[f"num_{i}"] = x
    cats = np.array(["alpha", "beta", "gamma", "delta", "epsilon"], dtype=object)
    for i in range(5):
        cols[f"cat_{i}"] = pd.array(cats[rng.integers(0, 5, rows)], dtype="string[pyarrow]")
    codes = rng.integers(0, 100_000, rows)
    for i in range(2):
        cols[f"code_{i}"] = pd.array(
            np.char.add(f"C{i}-", codes.astype(str)).astype(object), dtype="string[pyarrow]"
        )
    cols["flag"] = rng.random(rows) < 0.3
    cols["qty"] = rng.integers(0, 1000, rows)
    return pd.DataFrame(cols)


def loopstack_suite(df):  # noqa: ANN001, ANN201
    from loopstack.data import Suite

    checks: list[dict] = [{"type": "row_count", "min": 1}, {"type": "unique", "columns": ["id"]}]
    for col in df.columns:
        checks.append({"type": "null_rate", "column": col, "max": 0.05})
    for i in range(10):
        checks.append(
            {"type": "range", "column": f"num_{i}", "min": 100.0 * i - 200, "max": 100.0 * i + 200}
        )
    for i in range(5):
        checks.append(
            {
                "type": "allowed_values",
                "column": f"cat_{i}",
                "values": ["alpha", "beta", "gamma", "delta", "epsilon"],
            }
        )
    for i in range(2):
        checks.append({"type": "pattern", "column": f"code_{i}", "regex": rf"C{i}-\d+"})
    checks.append({"type": "range", "column": "qty", "min": 0, "max": 999})
    return Suite("bench", checks)


def pandera_schema(df):  # noqa: ANN001, ANN201
    import pandera.pandas as pa

    def nullable(col: str) -> pa.Check:
        return pa.Check(
            lambda s: s.isna().mean() <= 0.05, element_wise=False, name=f"null_rate_{col}"
        )

    columns = {"id": pa.Column("int64", unique=True)}
    for i in range(10):
        columns[f"num_{i}"] = pa.Column(
            "float64",
            [pa.Check.in_range(100.0 * i - 200, 100.0 * i + 200), nullable(f"num_{i}")],
            nullable=True,
        )
    for i in range(5):
        columns[f"cat_{i}"] = pa.Column(
            "string", pa.Check.isin(["alpha", "beta", "gamma", "delta", "epsilon"]), nullable=True
        )
    for i in range(2):
        columns[f"code_{i}"] = pa.Column(
            "string", pa.Check.str_matches(rf"^C{i}-\d+$"), nullable=True
        )
    columns["flag"] = pa.Column("bool")
    columns["qty"] = pa.Column("int64", pa.Check.in_range(0, 999))
    return pa.DataFrameSchema(columns, checks=pa.Check(lambda d: len(d) >= 1, element_wise=False))


def best(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-pandera", action="store_true")
    args = ap.parse_args()

    import pyarrow as pa

    import loopstack

    print(
        f"loopstack {loopstack.__version__} from {os.path.dirname(loopstack.__file__)}; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    t0 = time.perf_counter()
    df = make_data(args.rows)
    table = pa.Table.from_pandas(df, preserve_index=False)
    print(
        f"data: {args.rows:,} rows x {df.shape[1]} columns, made in {time.perf_counter() - t0:.1f}s"
    )

    suite = loopstack_suite(df)
    report = suite.validate(table, record=False)
    assert report.passed, str(report)
    ours = best(lambda: suite.validate(table, record=False), args.repeat)
    ours_df = best(lambda: suite.validate(df, record=False), 1)
    print(
        f"loopstack: {ours:.2f}s on the Arrow table ({len(suite.checks)} checks), "
        f"{ours_df:.2f}s from the pandas DataFrame (conversion included)"
    )
    if args.skip_pandera:
        return
    import pandera

    schema = pandera_schema(df)
    schema.validate(df, lazy=True)
    theirs = best(lambda: schema.validate(df, lazy=True), args.repeat)
    print(f"pandera {pandera.__version__}: {theirs:.2f}s on the pandas DataFrame")
    print(f"ratio (pandera / loopstack): {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
