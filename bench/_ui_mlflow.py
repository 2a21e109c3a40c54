"""MLflow's side of ``bench/ui_bench.py --peer``: the bench's runs logged into an MLflow
SQLite tracking store through MLflow's own client. Run by ui_bench.py in bench/.venv
(bench/setup_env.sh), never imported by loopstack:

    bench/.venv/bin/python bench/_ui_mlflow.py --uri sqlite:////tmp/x/mlflow.db \\
        --artifacts /tmp/x/artifacts --runs 2000

Each run is ``create_run`` (its name and start time), one ``log_batch`` of its 20
params and 10 metrics (step 0) and ``set_terminated`` (its end time), with the values
loopstack's side gets (``ui_bench.seeded_runs``). A store that already holds the
experiment with ``--runs`` runs is reused. Prints the experiment's id as the last line.
"""

from __future__ import annotations

import argparse
import sys
import time
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


def make(uri: str, artifacts: str, runs: int, seed: int) -> str:
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
        if done % 500 == 0:
            rate = done / (time.perf_counter() - t0)
            print(f"mlflow data: {done:,} runs ({rate:,.0f} runs/s)", flush=True)
    print(f"mlflow data: {runs:,} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    return str(eid)


def main(argv: list[str]) -> int:
    """Make (or find) the data; print the experiment id last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", required=True, help="sqlite:///... tracking store")
    ap.add_argument("--artifacts", required=True, help="the experiment's artifact directory")
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args(argv)
    print(make(args.uri, args.artifacts, args.runs, args.seed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
