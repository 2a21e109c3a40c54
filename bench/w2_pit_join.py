"""W2: point-in-time join, 100k label rows against 1M feature rows x 10 features.

loopstack's ``get_historical_features`` beside Feast's file offline store, with a raw
DuckDB ASOF LEFT JOIN (same TTL, no ordering, no checks) as the limit. One command:

    python bench/w2_pit_join.py [--labels 100000] [--rows 1000000] [--repeats 5]

Feast runs in the benchmarks' environment (``bench/.venv``, made by
``bash bench/setup_env.sh``; or ``--feast-python``) as a subprocess of this command: it
is never a loopstack dependency. Row counts are checked: loopstack and raw
DuckDB return every label row; Feast drops the rows whose features are all expired by
the TTL (or absent), and the difference is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _peers import BENCH_PYTHON, missing_env

N_FEATURES = 10
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
TTL = timedelta(hours=12)
DRIVERS = 10_000
SPAN_US = 30 * 86_400 * 10**6  # 30 days


def write_data(workdir: Path, labels: int, rows: int, seed: int = 0) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-01-01T00:00:00", "us")
    cols: dict[str, Any] = {
        "driver_id": rng.integers(0, DRIVERS, rows),
        "event_timestamp": t0 + rng.integers(0, SPAN_US, rows).astype("timedelta64[us]"),
    }
    for f in FEATURES:
        cols[f] = rng.random(rows)
    features = workdir / "features.parquet"
    pq.write_table(pa.table(cols), features)
    entity = workdir / "labels.parquet"
    pd.DataFrame(
        {
            "driver_id": rng.integers(0, DRIVERS, labels),
            "event_timestamp": t0 + rng.integers(0, SPAN_US, labels).astype("timedelta64[us]"),
            "label": rng.integers(0, 2, labels),
        }
    ).to_parquet(entity)
    return features, entity


def best_of(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# -- loopstack and raw DuckDB (this environment) -------------------------------------------
def loopstack_side(features: Path, entity: Path, workdir: Path) -> Any:
    os.environ["LOOPSTACK_HOME"] = str(workdir / "lshome")
    import pandas as pd

    import loopstack as ls

    labels = pd.read_parquet(entity)
    driver = ls.Entity("driver", join_keys=["driver_id"])
    view = ls.FeatureView(
        "driver_stats",
        entities=[driver],
        source=ls.FileSource(features),
        schema=[ls.Field(f, "float64") for f in FEATURES],
        ttl=TTL,
    )
    store = ls.FeatureStore()
    store.apply([driver, view])
    refs = [f"driver_stats:{f}" for f in FEATURES]
    return lambda: store.get_historical_features(labels, refs)


def raw_duckdb_side(features: Path, entity: Path) -> Any:
    import duckdb
    import pandas as pd

    labels = pd.read_parquet(entity)
    ttl_us = TTL // timedelta(microseconds=1)
    cols = ", ".join(
        f"CASE WHEN f.event_timestamp >= e.event_timestamp - INTERVAL "
        f"{ttl_us} MICROSECONDS THEN f.{c} END AS {c}"
        for c in FEATURES
    )
    sql = (
        f"SELECT e.*, {cols} FROM labels e ASOF LEFT JOIN read_parquet('{features}') f "
        "ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp"
    )

    def run() -> Any:
        con = duckdb.connect()
        con.register("labels", labels)
        try:
            return con.sql(sql).df()
        finally:
            con.close()

    return run


# -- Feast (runs inside the Feast environment) ---------------------------------------------
FEAST_REPO = """
project: w2
registry: {registry}
provider: local
online_store:
  type: sqlite
  path: {online}
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def run_feast(features: Path, entity: Path, workdir: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    (workdir / "feature_store.yaml").write_text(
        FEAST_REPO.format(registry=workdir / "registry.db", online=workdir / "online.db")
    )
    store = FeatureStore(repo_path=str(workdir))
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=TTL,
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=FileSource(path=str(features), timestamp_field="event_timestamp"),
    )
    store.apply([driver, view])
    labels = pd.read_parquet(entity)
    labels["event_timestamp"] = labels["event_timestamp"].dt.tz_localize("UTC")
    refs = [f"driver_stats:{f}" for f in FEATURES]
    seconds, out = best_of(
        lambda: store.get_historical_features(entity_df=labels, features=refs).to_df(), repeats
    )
    return {"seconds": seconds, "rows": int(len(out)), "null_f0": int(out["f0"].isna().sum())}


def feast_subprocess(
    python: str, features: Path, entity: Path, workdir: Path, repeats: int
) -> dict[str, Any] | str:
    missing = missing_env(python)
    if missing:
        return missing
    feast_dir = workdir / "feast"
    feast_dir.mkdir(exist_ok=True)
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from pathlib import Path; import w2_pit_join as w; "
        f"print(json.dumps(w.run_feast(Path({str(features)!r}), Path({str(entity)!r}), "
        f"Path({str(feast_dir)!r}), {repeats})))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return (
            "Feast failed: " + proc.stderr.strip().splitlines()[-1]
            if proc.stderr
            else f"Feast exited with {proc.returncode}"
        )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--feast-repeats", type=int, default=1)
    parser.add_argument("--feast-python", default=BENCH_PYTHON)
    parser.add_argument("--no-feast", action="store_true")
    args = parser.parse_args()

    import loopstack

    print(f"loopstack {loopstack.__file__}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="w2-") as tmp:
        workdir = Path(tmp)
        features, entity = write_data(workdir, args.labels, args.rows)
        ls_run, raw_run = (
            loopstack_side(features, entity, workdir),
            raw_duckdb_side(features, entity),
        )
        ls_run(), raw_run()  # warm up (imports, file cache)
        ls_best, raw_best = float("inf"), float("inf")
        ls_out = raw_out = None
        for _ in range(args.repeats):  # interleaved: both see the same machine load
            t = time.perf_counter()
            ls_out = ls_run()
            ls_best = min(ls_best, time.perf_counter() - t)
            t = time.perf_counter()
            raw_out = raw_run()
            raw_best = min(raw_best, time.perf_counter() - t)
        assert ls_out is not None and raw_out is not None
        feast: dict[str, Any] | str = "skipped (--no-feast)"
        if not args.no_feast:
            feast = feast_subprocess(
                args.feast_python, features, entity, workdir, args.feast_repeats
            )

    n = args.labels
    print(
        f"\nW2: {n:,} label rows x {args.rows:,} feature rows x {N_FEATURES} features, "
        f"TTL {TTL}; best of {args.repeats} (Feast: best of {args.feast_repeats})\n"
    )
    print("| engine | seconds | rows returned | rows with no feature | loopstack's speed-up |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| loopstack | {ls_best:.3f} | {len(ls_out):,} | {int(ls_out['f0'].isna().sum()):,} "
        "| 1.00x |"
    )
    print(
        f"| raw DuckDB ASOF JOIN (limit) | {raw_best:.3f} | {len(raw_out):,} | "
        f"{int(raw_out['f0'].isna().sum()):,} | {raw_best / ls_best:.2f}x (the limit) |"
    )
    if isinstance(feast, dict):
        print(
            f"| Feast {_feast_version(args.feast_python)} file offline store | "
            f"{feast['seconds']:.3f} | {feast['rows']:,} | {feast['null_f0']:,} | "
            f"{feast['seconds'] / ls_best:.1f}x |"
        )
    else:
        print(f"| Feast | - | - | - | {feast} |")
    print()
    ok_rows = len(ls_out) == n
    print(f"loopstack returned every label row: {'yes' if ok_rows else 'NO'} ({len(ls_out):,})")
    print(
        f"loopstack within 1.3x of raw DuckDB: {'yes' if ls_best <= 1.3 * raw_best else 'no'}"
        f" ({ls_best / raw_best:.2f}x)"
    )
    if isinstance(feast, dict):
        print(
            f"loopstack >= 5x faster than Feast: "
            f"{'yes' if feast['seconds'] >= 5 * ls_best else 'no'} "
            f"({feast['seconds'] / ls_best:.1f}x)"
        )
        if feast["rows"] != n:
            print(
                f"Feast dropped {n - feast['rows']:,} label rows (no unexpired feature row); "
                "loopstack keeps them with NULLs"
            )


def _feast_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import feast; print(feast.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip()


if __name__ == "__main__":
    main()
