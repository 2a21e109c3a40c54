"""W3: online reads (1 and 100 entities x 20 features, p50/p99) and materialization.

loopstack's SQLite online store (in-process) beside Feast's SQLite online store, with
loopstack on Redis as a third column; and materializing 100k entities x 20 features.

    python bench/w3_online_read.py [--entities 100000] [--redis redis://127.0.0.1:6379/0]

Feast runs in the benchmarks' environment (``bench/.venv``, made by
``bash bench/setup_env.sh``; or ``--feast-python``) as a subprocess of this command: it
is never a loopstack dependency. ``--no-feast`` measures loopstack alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _peers import BENCH_PYTHON, missing_env

N_FEATURES = 20
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FEATURES = [f"f{i:02d}" for i in range(N_FEATURES)]


def write_source(path: Path, n: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    offsets = rng.integers(0, 86_400, n)
    cols: dict[str, Any] = {
        "driver_id": np.arange(n, dtype=np.int64),
        "event_timestamp": pa.array(
            [T0 + timedelta(seconds=int(s)) for s in offsets], pa.timestamp("us", tz="UTC")
        ),
    }
    for f in FEATURES:
        cols[f] = rng.random(n)
    pq.write_table(pa.table(cols), path)


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": s[len(s) // 2] * 1e3, "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3}


def timed_reads(read: Any, n: int, batch: int, iters: int) -> dict[str, float]:
    import random

    rnd = random.Random(1)
    for _ in range(min(200, iters)):  # warm up caches, statements, plans
        read([{"driver_id": rnd.randrange(n)} for _ in range(batch)])
    samples = []
    for _ in range(iters):
        rows = [{"driver_id": rnd.randrange(n)} for _ in range(batch)]
        t = time.perf_counter()
        read(rows)
        samples.append(time.perf_counter() - t)
    return percentiles(samples)


# -- loopstack --------------------------------------------------------------------------------
def run_loopstack(source: Path, n: int, online_url: str, iters: int) -> dict[str, Any]:
    from loopstack.features import Entity, FeatureStore, FeatureView, Field, FileSource

    store = FeatureStore(online_url=online_url)
    driver = Entity("driver", join_keys=["driver_id"])
    view = FeatureView(
        "driver_stats",
        entities=[driver],
        source=FileSource(source, "event_timestamp"),
        schema=[Field(f, "float64") for f in FEATURES],
    )
    store.apply([driver, view])
    t = time.perf_counter()
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=2))
    mat = time.perf_counter() - t
    refs = [f"driver_stats:{f}" for f in FEATURES]

    def read(rows: list[dict[str, int]]) -> Any:
        return store.get_online_features(rows, refs).to_dict()

    check = read([{"driver_id": 0}])
    assert check[FEATURES[0]][0] is not None, check
    return {
        "materialize_s": mat,
        "one": timed_reads(read, n, 1, iters),
        "hundred": timed_reads(read, n, 100, max(100, iters // 5)),
    }


# -- Feast (runs inside the Feast environment) ----------------------------------------------
FEAST_REPO = """
project: w3
registry: {registry}
provider: local
online_store:
  type: sqlite
  path: {online}
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def run_feast(source: Path, n: int, workdir: Path, iters: int) -> dict[str, Any]:
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
        ttl=timedelta(days=0),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=FileSource(path=str(source), timestamp_field="event_timestamp"),
        online=True,
    )
    store.apply([driver, view])
    t = time.perf_counter()
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=2))
    mat = time.perf_counter() - t
    refs = [f"driver_stats:{f}" for f in FEATURES]

    def read(rows: list[dict[str, int]]) -> Any:
        return store.get_online_features(features=refs, entity_rows=rows).to_dict()

    check = read([{"driver_id": 0}])
    assert check[FEATURES[0]][0] is not None, check
    return {
        "materialize_s": mat,
        "one": timed_reads(read, n, 1, iters),
        "hundred": timed_reads(read, n, 100, max(100, iters // 5)),
    }


def feast_subprocess(
    python: str, source: Path, n: int, workdir: Path, iters: int
) -> dict[str, Any] | str:
    missing = missing_env(python)
    if missing:
        return missing
    proc = subprocess.run(
        [
            python,
            __file__,
            "--feast-worker",
            str(source),
            "--entities",
            str(n),
            "--workdir",
            str(workdir),
            "--iters",
            str(iters),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
        return f"Feast failed: {tail}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--iters", type=int, default=2_000)
    parser.add_argument(
        "--redis", default=os.environ.get("LOOPSTACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--feast-python", default=BENCH_PYTHON)
    parser.add_argument("--no-feast", action="store_true", help="measure loopstack alone")
    parser.add_argument("--feast-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.feast_worker:
        result = run_feast(Path(args.feast_worker), args.entities, Path(args.workdir), args.iters)
        print(json.dumps(result))
        return

    import loopstack

    print(f"loopstack {loopstack.__file__}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LOOPSTACK_HOME"] = str(root / "home")
        source = root / "driver_stats.parquet"
        write_source(source, args.entities)
        ls_sqlite = run_loopstack(
            source, args.entities, f"sqlite:///{root / 'online.db'}", args.iters
        )
        try:
            import redis

            redis.Redis.from_url(args.redis).ping()
            ls_redis: dict[str, Any] | None = run_loopstack(
                source, args.entities, f"{args.redis}?prefix=w3bench-{os.getpid()}", args.iters
            )
            from loopstack.features.online import open_online_store

            open_online_store(f"{args.redis}?prefix=w3bench-{os.getpid()}").delete_view(
                "driver_stats"
            )
        except Exception as exc:  # noqa: BLE001 - the Redis column is optional
            print(f"(no Redis figure: {exc})", file=sys.stderr)
            ls_redis = None
        (root / "feast").mkdir()
        feast: dict[str, Any] | str = "skipped (--no-feast)"
        if not args.no_feast:
            feast = feast_subprocess(
                args.feast_python, source, args.entities, root / "feast", args.iters
            )

    def cell(r: dict[str, Any] | None, which: str, stat: str) -> str:
        return "-" if r is None else f"{r[which][stat]:.3f}"

    fe = feast if isinstance(feast, dict) else None
    print(
        f"W3 online read, {N_FEATURES} features; materialization of {args.entities:,} "
        f"entities x {N_FEATURES} features"
    )
    print(
        f"{'measure':<28}{'loopstack sqlite':>18}{'loopstack redis':>17}{'feast sqlite':>14}"
        f"{'feast/loopstack':>17}"
    )
    for which, label in (("one", "1 entity"), ("hundred", "100 entities")):
        for stat in ("p50_ms", "p99_ms"):
            ratio = f"{fe[which][stat] / ls_sqlite[which][stat]:.1f}x" if fe else "-"
            print(
                f"{label + ' ' + stat:<28}{cell(ls_sqlite, which, stat):>18}"
                f"{cell(ls_redis, which, stat):>17}{cell(fe, which, stat):>14}{ratio:>17}"
            )
    mat_ratio = f"{fe['materialize_s'] / ls_sqlite['materialize_s']:.1f}x" if fe else "-"
    redis_mat = f"{ls_redis['materialize_s']:.2f}" if ls_redis else "-"
    feast_mat = f"{fe['materialize_s']:.2f}" if fe else "-"
    print(
        f"{'materialize s':<28}{ls_sqlite['materialize_s']:>18.2f}{redis_mat:>17}"
        f"{feast_mat:>14}{mat_ratio:>17}"
    )
    if not fe:
        print(f"(Feast not measured: {feast})")


if __name__ == "__main__":
    main()
