"""W6: batch scoring, N rows x 30 float32 features, Parquet -> Parquet.

Runs each side in its own process while a sampler sums the proportional set size (PSS,
shared pages counted once) of that process and all its children every 50 ms:
- raw: the whole file read into memory, one ``predict_proba`` call (the limit);
- loopstack local: ``ls.predict_batch`` with worker processes;
- loopstack ray: the same on a local Ray (``--no-ray`` skips it), timed twice: the first
  job starts the Ray (its processes, the workers' imports) inside its time, the second
  ("warm") runs on the Ray already up, as a job on a running cluster would.

The data (seeded) and the model are cached under ``bench/.w6/`` (git-ignored).

    python bench/w6_batch.py [--rows 10000000] [--workers 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".w6"
FEATURES = [f"f{i:02d}" for i in range(30)]


def _data(rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = CACHE / f"input-{rows}.parquet"
    if path.is_file():
        return path
    CACHE.mkdir(exist_ok=True)
    rng = np.random.default_rng(6)
    schema = pa.schema([("id", pa.int64()), *[(f, pa.float32()) for f in FEATURES]])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            x = rng.normal(size=(n, 30)).astype("float32")
            cols = {
                "id": np.arange(start, start + n),
                **{f: x[:, i] for i, f in enumerate(FEATURES)},
            }
            writer.write_table(pa.table(cols, schema=schema), row_group_size=100_000)
    os.replace(tmp, path)
    return path


def _model(home: Path) -> str:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    import loopstack as ls

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(50_000, 30)).astype("float32"), columns=FEATURES)
    y = (x["f00"] + x["f01"] * x["f02"] > 0).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    with ls.start_run(experiment="w6") as run:
        version = run.log_model(clf, name="w6", sample_input=x.head(5))
    return f"models:/w6/{version.version}"


def _tree_pss_kib(pid: int) -> int:
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def _measure(mode: str, args: argparse.Namespace, data: Path, uri: str, home: Path) -> dict:
    env = {**os.environ, "LOOPSTACK_HOME": str(home)}
    out = Path(tempfile.mkdtemp(prefix="w6-")) / "scores.parquet"
    cmd = [sys.executable, __file__, "--child", mode, "--uri", uri, "--data", str(data),
           "--out", str(out), "--workers", str(args.workers)]  # fmt: skip
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_pss_kib(child.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    text, _ = child.communicate()
    stop.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{mode} failed")
    result = json.loads(text.strip().splitlines()[-1])
    result["peak_mib"] = peak / 1024
    return result


def _child(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(args.data).metadata.num_rows
    if args.child == "raw":
        import loopstack as ls

        model = ls.load_model(args.uri).model
        t0 = time.perf_counter()
        x = pq.read_table(args.data, columns=FEATURES).to_pandas()
        proba = model.predict_proba(x)
        seconds = time.perf_counter() - t0
        del proba
    else:
        import loopstack as ls

        def job() -> float:
            t0 = time.perf_counter()
            ls.predict_batch(
                args.uri,
                args.data,
                args.out,
                key_columns=["id"],
                overwrite=True,
                workers=args.workers,
                executor=args.child,
                chunk_rows=100_000,
            )
            return time.perf_counter() - t0

        seconds = job()  # Ray: its start-up (the local cluster, the workers' imports) inside
        if args.child == "ray":  # the same job again on the Ray now running
            warm = job()
            print(json.dumps({"rows": rows, "seconds": seconds, "warm_seconds": warm}))
            return
    print(json.dumps({"rows": rows, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--uri")
    parser.add_argument("--data")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        return _child(args)
    data = _data(args.rows)
    home = Path(tempfile.mkdtemp(prefix="w6-home-"))
    os.environ["LOOPSTACK_HOME"] = str(home)
    uri = _model(home)
    modes = ["raw", "local"] + ([] if args.no_ray else ["ray"])
    results = {m: _measure(m, args, data, uri, home) for m in modes}
    raw = results["raw"]["rows"] / results["raw"]["seconds"]
    print(f"W6: {args.rows:,} rows x 30 float32, workers={args.workers}")
    print(f"{'side':<18}{'rows/s':>12}{'x raw':>8}{'peak MiB (PSS, tree)':>24}")
    for mode, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(f"{mode:<18}{rate:>12,.0f}{rate / raw:>8.2f}{r['peak_mib']:>24,.0f}")
        if "warm_seconds" in r:  # peak: both jobs
            rate = r["rows"] / r["warm_seconds"]
            print(f"{mode + ' (warm)':<18}{rate:>12,.0f}{rate / raw:>8.2f}{r['peak_mib']:>24,.0f}")


if __name__ == "__main__":
    main()
