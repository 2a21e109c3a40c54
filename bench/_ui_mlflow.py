"""MLflow's side of ``bench/ui_bench.py --peer``: the bench's runs logged into an MLflow
SQLite tracking store through MLflow's own client. Run by ui_bench.py in bench/.venv
(bench/setup_env.sh), never imported by loopstack:

    bench/.venv/bin/python bench/_ui_mlflow.py --uri sqlite:////tmp/x/mlflow.db \\
        --artifacts /tmp/x/artifacts --runs 2000

Each run is ``create_run`` (its name and start time), one ``log_batch`` of its 20
params and 10 metrics (step 0) and ``set_terminated`` (its end time), with the values
loopstack's side gets (``ui_bench.seeded_runs``). MLflow's client logs ~3-10 runs a
second here, so ``--bulk`` logs only the first run through it and writes the others'
rows straight into its SQLite tables, copied from the rows the client wrote for the
first (every column and tag of it) with each run's own id, name, times, params and
metrics: the same rows, ~1,000x sooner. A store that already holds the experiment with
``--runs`` runs is reused. Prints the experiment's id as the last line.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_bench import EXPERIMENT, seeded_runs  # noqa: E402


def _count(client: Any, eid: str) -> int:
    n, token = 0, None
    while True:
        page = client.search_runs([eid], max_results=50_000, page_token=token)
        n += len(page)
        token = page.token
        if not token:
            return n


def make(uri: str, artifacts: str, runs: int, seed: int, bulk: bool = False) -> str:
    """Create (or find) the experiment of ``runs`` runs in the store at ``uri``; its id."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        have = _count(client, exp.experiment_id)
        if have == runs:
            print(f"mlflow data: reusing {runs:,} runs in {uri}", flush=True)
            return str(exp.experiment_id)
        raise SystemExit(f"{uri} holds {have:,} runs in {EXPERIMENT!r}, not {runs:,}")
    eid = client.create_experiment(EXPERIMENT, artifact_location=Path(artifacts).as_uri())
    t0 = time.perf_counter()
    made = seeded_runs(runs, seed, int(time.time() * 1000))
    for done, (_, name, begin, end, params, metrics) in enumerate(made, 1):
        run_id = client.create_run(eid, start_time=begin, run_name=name).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, begin, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        client.set_terminated(run_id, end_time=end)
        if bulk:
            _copy_rows(uri, run_id, made, t0)
            break
        if done % 500 == 0:
            rate = done / (time.perf_counter() - t0)
            print(f"mlflow data: {done:,} runs ({rate:,.0f} runs/s)", flush=True)
    print(f"mlflow data: {runs:,} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    return str(eid)


#: MLflow's tables that hold a run's rows, keyed by run_uuid
_TABLES = ("runs", "tags", "params", "metrics", "latest_metrics")


def _copy_rows(uri: str, template: str, made: Any, t0: float) -> None:
    """Every run of ``made`` after the first written as the rows MLflow's client wrote for
    ``template`` (the first), with the run's own values, 2,000 runs a transaction."""
    import itertools
    import sqlite3

    db = sqlite3.connect(uri.removeprefix("sqlite:///"))
    cols = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in _TABLES}
    rows = {
        t: [
            dict(zip(cols[t], r, strict=True))
            for r in db.execute(f"SELECT * FROM {t} WHERE run_uuid = ?", (template,))
        ]  # fmt: skip
        for t in _TABLES
    }
    (run_row,) = rows["runs"]
    metric_row, param_row = rows["metrics"][0], rows["params"][0]
    latest_row = rows["latest_metrics"][0]
    done = 1
    while chunk := list(itertools.islice(made, 2000)):
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in _TABLES}
        for _, name, begin, end, params, metrics in chunk:
            rid = uuid.uuid4().hex
            uri_of = run_row["artifact_uri"].replace(template, rid)
            out["runs"].append({**run_row, "run_uuid": rid, "name": name, "start_time": begin,
                                "end_time": end, "artifact_uri": uri_of})  # fmt: skip
            for tag in rows["tags"]:
                value = name if tag["key"] == "mlflow.runName" else tag["value"]
                out["tags"].append({**tag, "run_uuid": rid, "value": value})
            for k, v in params.items():
                out["params"].append({**param_row, "run_uuid": rid, "key": k, "value": v})
            for k, v in metrics.items():
                point = {"run_uuid": rid, "key": k, "value": v, "timestamp": begin, "step": 0}
                out["metrics"].append({**metric_row, **point})
                out["latest_metrics"].append({**latest_row, **point})
        with db:
            for t, items in out.items():
                marks = ", ".join("?" * len(cols[t]))
                db.executemany(
                    f"INSERT INTO {t} ({', '.join(cols[t])}) VALUES ({marks})",
                    [tuple(r[c] for c in cols[t]) for r in items],
                )
        done += len(chunk)
        rate = done / (time.perf_counter() - t0)
        print(f"mlflow data: {done:,} runs ({rate:,.0f} runs/s, bulk)", flush=True)
    db.close()


def main(argv: list[str]) -> int:
    """Make (or find) the data; print the experiment id last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", required=True, help="sqlite:///... tracking store")
    ap.add_argument("--artifacts", required=True, help="the experiment's artifact directory")
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--bulk", action="store_true", help="the first run through the client")
    args = ap.parse_args(argv)
    print(make(args.uri, args.artifacts, args.runs, args.seed, args.bulk), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
