"""W1 — experiment tracking: 100 runs x 20 params x 1,000 metric points.

loopstack (embedded SQLite in WAL mode under a fresh ``LOOPSTACK_HOME``) beside
MLflow (``sqlite:///`` tracking URI, fresh database, tmp artifact root), in two modes:

* ``per-call`` — a training loop calling ``log_metric`` once per step
  (loopstack: ``ls.log_metric`` inside ``with ls.start_run(...)``, which buffers and
  flushes in batches; MLflow: ``mlflow.log_metric`` inside ``mlflow.start_run``).
* ``batch``    — the batch APIs (loopstack: ``TrackingClient.log_batch`` with all
  1,000 points and the 20 params in one call; MLflow: ``MlflowClient.log_batch``,
  which accepts at most 1,000 entities per call, so params and metrics go in two calls).

Both tools log the 20 params of every run, and both use their fluent ``start_run``
for the run's lifecycle (so both capture their environment/context tags:
loopstack with ``capture_env=True``, its default).

Every (tool, mode) pair runs in its own subprocess with its own fresh temp
directory. The timed region covers run creation, params, every metric point and
run end (for loopstack the end flushes the buffer); it excludes interpreter start,
imports, and a warm-up (first DB open + migration + one throwaway run in another
experiment, which pays one-time lazy imports and caches on both sides; its cost is
reported as "cold first run"). After each timed section the worker counts what
actually landed in the database (SQL on the db file and, for loopstack, also the
API), and fails loudly if anything is missing.

MLflow per-call at 100k points would take ~17 minutes, so by default it runs a
scaled-down subset (3 runs x 1,000 points, ``--mlflow-runs/--mlflow-points``);
throughput (points/s) is compared, and the sizes each side ran are printed.

    python bench/w1_tracking.py [--quick] [--mlflow-runs N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = {"per-call": 100.0, "batch": 10.0}
METRIC_KEY = "loss"


# ----------------------------------------------------------------------------------------
# the workload (shared by both tools)
# ----------------------------------------------------------------------------------------
def make_params(run: int, n: int) -> dict[str, Any]:
    kinds = (
        lambda j: 10.0 ** -(j % 5),
        lambda j: 16 * (j + 1),
        lambda j: f"choice-{run % 7}-{j}",
        lambda j: j % 2 == 0,
    )
    return {f"param_{j:02d}": kinds[j % 4](j) for j in range(n)}


def value(run: int, step: int) -> float:
    return 1.0 / (step + 1) + run * 1e-3


# ----------------------------------------------------------------------------------------
# workers (each runs in its own subprocess)
# ----------------------------------------------------------------------------------------
def _count(db: Path, sql: str, *args: Any) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute(sql, args).fetchone()[0])
    finally:
        con.close()


def worker_loopstack(
    mode: str, runs: int, n_params: int, points: int, workdir: Path, capture_env: bool
) -> dict[str, Any]:
    home = workdir / "loopstack-home"
    os.environ["LOOPSTACK_HOME"] = str(home)
    for var in ("LOOPSTACK_DB_URL", "LOOPSTACK_TRACKING_URI", "LOOPSTACK_ARTIFACTS_URL"):
        os.environ.pop(var, None)
    import loopstack as ls
    from loopstack.store import open_stores
    from loopstack.tracking import Metric, TrackingClient
    from loopstack.tracking._entities import now_ms
    from loopstack.tracking._environment import environment_tags

    out: dict[str, Any] = {
        "tool": "loopstack",
        "version": ls.__version__,
        "mode": mode,
        "capture_env": capture_env,
    }
    # -- warm-up (not timed): first DB open + migration, one throwaway run --------------
    t0 = time.perf_counter()
    stores = open_stores()
    out["db_open_migrate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    environment_tags()
    out["env_capture_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    environment_tags()
    out["env_capture_again_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ls.start_run(experiment="warmup", params={"x": 1}, capture_env=capture_env):
        ls.log_metric("warm", 1.0, step=0)
    out["cold_first_run_s"] = time.perf_counter() - t0
    exp_id = ls.set_experiment("w1")

    params = [make_params(r, n_params) for r in range(runs)]
    loop_s = 0.0
    calls = 0
    # -- timed -------------------------------------------------------------------------
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if mode == "per-call":
        log_metric = ls.log_metric
        for r in range(runs):
            with ls.start_run(
                experiment="w1", run_name=f"run-{r:03d}", params=params[r], capture_env=capture_env
            ):
                t_loop = time.perf_counter()
                for i in range(points):
                    log_metric(METRIC_KEY, value(r, i), step=i)
                loop_s += time.perf_counter() - t_loop
                calls += points
    else:
        for r in range(runs):
            with ls.start_run(
                experiment="w1", run_name=f"run-{r:03d}", capture_env=capture_env
            ) as run:
                t_loop = time.perf_counter()
                ts = now_ms()
                metrics = [Metric(METRIC_KEY, value(r, i), i, ts) for i in range(points)]
                run.client.log_batch(run.run_id, metrics=metrics, params=params[r])
                loop_s += time.perf_counter() - t_loop
                calls += 1
    wall = time.perf_counter() - t_start
    out["cpu_s"] = time.process_time() - cpu_start
    # -- verify (not timed) ------------------------------------------------------------
    db = home / "loopstack.db"
    run_ids = [
        r
        for (r,) in sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "SELECT run_id FROM runs WHERE experiment_id = ?", (int(exp_id),)
        )
    ]
    n_metrics = _count(
        db,
        "SELECT COUNT(*) FROM metrics m JOIN runs r ON r.run_id = m.run_id "
        "WHERE r.experiment_id = ? AND m.key = ?",
        int(exp_id),
        METRIC_KEY,
    )
    n_params_db = _count(
        db,
        "SELECT COUNT(*) FROM params p JOIN runs r ON r.run_id = p.run_id "
        "WHERE r.experiment_id = ?",
        int(exp_id),
    )
    n_finished = _count(
        db, "SELECT COUNT(*) FROM runs WHERE experiment_id = ? AND status = 'FINISHED'", int(exp_id)
    )
    client = TrackingClient()
    api_runs = client.search_runs([exp_id], max_results=runs + 10)
    api_points = sum(len(client.get_metric_history(r.run_id, METRIC_KEY)) for r in api_runs)
    api_params = sum(len(r.params) for r in api_runs)
    sample = client.get_metric_history(api_runs[0].run_id, METRIC_KEY)
    r_idx = int(api_runs[0].run_name.split("-")[1])
    values_ok = [m.value for m in sample] == [value(r_idx, i) for i in range(points)] and api_runs[
        0
    ].params == {k: str(v) for k, v in params[r_idx].items()}
    env_tags = len([k for k in api_runs[0].tags if k.startswith("loopstack.")])
    stores.db.dispose()
    out.update(
        _result(
            runs,
            n_params,
            points,
            wall,
            loop_s,
            calls,
            dict(
                runs=len(run_ids),
                finished=n_finished,
                metric_rows=n_metrics,
                param_rows=n_params_db,
                api_runs=len(api_runs),
                api_points=api_points,
                api_params=api_params,
                sample_values_match=values_ok,
                env_tags_on_run=env_tags,
            ),
        )
    )
    return out


def worker_mlflow(
    mode: str, runs: int, n_params: int, points: int, workdir: Path
) -> dict[str, Any]:
    db = workdir / "mlflow.db"
    uri = f"sqlite:///{db}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import logging

    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    out: dict[str, Any] = {"tool": "mlflow", "version": mlflow.__version__, "mode": mode}
    artifacts = (workdir / "mlartifacts").as_uri()
    # -- warm-up (not timed): first DB open + migration, one throwaway run --------------
    t0 = time.perf_counter()
    mlflow.set_tracking_uri(uri)
    warm_id = mlflow.create_experiment("warmup", artifact_location=f"{artifacts}/warmup")
    out["db_open_migrate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=warm_id):
        mlflow.log_params({"x": 1})
        mlflow.log_metric("warm", 1.0, step=0)
    out["cold_first_run_s"] = time.perf_counter() - t0
    exp_id = mlflow.create_experiment("w1", artifact_location=f"{artifacts}/w1")
    client = MlflowClient()

    params = [make_params(r, n_params) for r in range(runs)]
    loop_s = 0.0
    calls = 0
    # -- timed -------------------------------------------------------------------------
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if mode == "per-call":
        log_metric = mlflow.log_metric
        for r in range(runs):
            with mlflow.start_run(experiment_id=exp_id, run_name=f"run-{r:03d}"):
                mlflow.log_params(params[r])
                t_loop = time.perf_counter()
                for i in range(points):
                    log_metric(METRIC_KEY, value(r, i), step=i)
                loop_s += time.perf_counter() - t_loop
                calls += points
    else:
        for r in range(runs):
            with mlflow.start_run(experiment_id=exp_id, run_name=f"run-{r:03d}") as run:
                run_id = run.info.run_id
                t_loop = time.perf_counter()
                # at most 1,000 entities (metrics + params + tags) per call
                client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params[r].items()])
                calls += 1
                ts = int(time.time() * 1000)
                metrics = [Metric(METRIC_KEY, value(r, i), ts, i) for i in range(points)]
                for c in range(0, points, 1000):
                    client.log_batch(run_id, metrics=metrics[c : c + 1000])
                    calls += 1
                loop_s += time.perf_counter() - t_loop
    wall = time.perf_counter() - t_start
    out["cpu_s"] = time.process_time() - cpu_start
    # -- verify (not timed) ------------------------------------------------------------
    n_runs = _count(db, "SELECT COUNT(*) FROM runs WHERE experiment_id = ?", int(exp_id))
    n_metrics = _count(
        db,
        "SELECT COUNT(*) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
        "WHERE r.experiment_id = ? AND m.key = ?",
        int(exp_id),
        METRIC_KEY,
    )
    n_params_db = _count(
        db,
        "SELECT COUNT(*) FROM params p JOIN runs r ON r.run_uuid = p.run_uuid "
        "WHERE r.experiment_id = ?",
        int(exp_id),
    )
    n_finished = _count(
        db, "SELECT COUNT(*) FROM runs WHERE experiment_id = ? AND status = 'FINISHED'", int(exp_id)
    )
    out.update(
        _result(
            runs,
            n_params,
            points,
            wall,
            loop_s,
            calls,
            dict(runs=n_runs, finished=n_finished, metric_rows=n_metrics, param_rows=n_params_db),
        )
    )
    return out


def _result(
    runs: int,
    n_params: int,
    points: int,
    wall: float,
    loop_s: float,
    calls: int,
    verified: dict[str, Any],
) -> dict[str, Any]:
    total = runs * points
    expected = {"runs": runs, "finished": runs, "metric_rows": total, "param_rows": runs * n_params}
    if "api_points" in verified:
        expected.update(
            api_runs=runs, api_points=total, api_params=runs * n_params, sample_values_match=True
        )
    bad = {k: (verified.get(k), v) for k, v in expected.items() if verified.get(k) != v}
    return {
        "runs": runs,
        "params": n_params,
        "points_per_run": points,
        "points": total,
        "wall_s": wall,
        "points_per_s": total / wall,
        "logging_calls": calls,
        "logging_s": loop_s,
        "mean_call_latency_us": loop_s / calls * 1e6,
        "overhead_s": wall - loop_s,
        "per_run_overhead_ms": (wall - loop_s) / runs * 1e3,
        "verified": verified,
        "verify_ok": not bad,
        "verify_mismatches": bad,
    }


def _si(x: float) -> str:
    return f"{x / 1e3:,.1f}k" if x >= 1e4 else f"{x:,.0f}"


def _latency(us: float) -> str:
    return f"{us:,.2f} µs" if us < 1000 else f"{us / 1e3:,.2f} ms"


def _worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tool", required=True, choices=["loopstack", "mlflow"])
    p.add_argument("--mode", required=True, choices=["per-call", "batch"])
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--params", type=int, required=True)
    p.add_argument("--points", type=int, required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--no-capture-env", action="store_true")
    a = p.parse_args(argv)
    workdir = Path(a.workdir)
    os.chdir(workdir)  # no stray loopstack.toml / mlruns from the caller's cwd
    if a.tool == "loopstack":
        res = worker_loopstack(
            a.mode, a.runs, a.params, a.points, workdir, capture_env=not a.no_capture_env
        )
    else:
        res = worker_mlflow(a.mode, a.runs, a.params, a.points, workdir)
    Path(a.result).write_text(json.dumps(res, indent=2))


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------
def run_worker(
    tool: str,
    mode: str,
    runs: int,
    n_params: int,
    points: int,
    *,
    capture_env: bool = True,
    keep: bool = False,
    timeout: float = 3600,
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"w1-{tool}-{mode}-"))
    result = workdir / "result.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--tool",
        tool,
        "--mode",
        mode,
        "--runs",
        str(runs),
        "--params",
        str(n_params),
        "--points",
        str(points),
        "--workdir",
        str(workdir),
        "--result",
        str(result),
    ]
    if not capture_env:
        cmd.append("--no-capture-env")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOOPSTACK_", "MLFLOW_TRACKING_URI"))
    }
    proc = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0 or not result.exists():
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(
            f"worker {tool}/{mode} failed (exit {proc.returncode}); workdir kept at {workdir}"
        )
    res = json.loads(result.read_text())
    res["workdir"] = str(workdir)
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return res


def _source_state() -> str:
    """Which loopstack was measured: its version, and the git commit (+dirty) of the checkout."""
    import loopstack

    where = Path(loopstack.__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    git = f", git {sha}{' +uncommitted changes in src' if dirty else ''}" if sha else ""
    return f"loopstack {loopstack.__version__} ({where}{git})"


def _aggregate(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The median repeat (by throughput) carries the row; min/max and every repeat are kept."""
    import statistics

    ordered = sorted(reps, key=lambda r: r["points_per_s"])
    med = dict(ordered[(len(ordered) - 1) // 2])
    med["points_per_s"] = statistics.median(r["points_per_s"] for r in reps)
    med["mean_call_latency_us"] = statistics.median(r["mean_call_latency_us"] for r in reps)
    med["points_per_s_min"] = ordered[0]["points_per_s"]
    med["points_per_s_max"] = ordered[-1]["points_per_s"]
    med["verify_ok"] = all(r["verify_ok"] for r in reps)
    med["repeats"] = reps
    return med


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--worker":
        _worker_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke test (10 runs; MLflow per-call 1 run x 200; 1 repeat)",
    )
    p.add_argument("--runs", type=int, default=None, help="loopstack runs (default 100)")
    p.add_argument("--params", type=int, default=20)
    p.add_argument("--points", type=int, default=1000, help="metric points per run")
    p.add_argument(
        "--mlflow-runs",
        type=int,
        default=None,
        help="MLflow per-call runs (default 3: ~10 ms a call makes 100 runs ~17 min)",
    )
    p.add_argument(
        "--mlflow-points",
        type=int,
        default=None,
        help="MLflow per-call points per run (default --points)",
    )
    p.add_argument(
        "--mlflow-batch-runs",
        type=int,
        default=None,
        help="MLflow batch-mode runs (default: same as loopstack)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="repeats of every side, interleaved; the median is reported (default 3)",
    )
    p.add_argument(
        "--no-env-variant",
        action="store_true",
        help="skip the extra loopstack per-call run with capture_env=False",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp directories")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    a = p.parse_args(argv)

    runs = a.runs or (10 if a.quick else 100)
    ml_runs = a.mlflow_runs or (1 if a.quick else 3)
    ml_points = a.mlflow_points or (200 if a.quick else a.points)
    ml_batch_runs = a.mlflow_batch_runs or runs
    repeat = a.repeat or (1 if a.quick else 3)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(150, Console().width))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    console.print(
        f"[bold]W1 tracking[/bold]: {runs} runs x {a.params} params x {a.points:,} "
        f"metric points (loopstack), {repeat} interleaved repeat(s), median reported"
    )
    console.print(
        f"  {_source_state()}; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at start, "
        f"{platform.platform()}"
    )
    plan = [
        ("loopstack", "per-call", runs, a.points, True),
        ("mlflow", "per-call", ml_runs, ml_points, True),
        ("loopstack", "batch", runs, a.points, True),
        ("mlflow", "batch", ml_batch_runs, a.points, True),
    ]
    if not a.no_env_variant:
        plan.append(("loopstack", "per-call", runs, a.points, False))
    by_label: dict[str, list[dict[str, Any]]] = {}
    for rep in range(repeat):
        for tool, mode, n_runs, n_points, cap in plan:
            label = f"{tool} {mode}" + ("" if cap else " (no capture_env)")
            console.print(
                f"  [{rep + 1}/{repeat}] {label}: {n_runs} runs x {a.params} params x "
                f"{n_points:,} points ...",
                end=" ",
            )
            res = run_worker(tool, mode, n_runs, a.params, n_points, capture_env=cap, keep=a.keep)
            res["label"] = label
            res["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0
            by_label.setdefault(label, []).append(res)
            status = (
                "[green]verified[/green]"
                if res["verify_ok"]
                else f"[red]VERIFY FAILED {res['verify_mismatches']}[/red]"
            )
            console.print(f"{res['wall_s']:.2f} s, {res['points_per_s']:,.0f} points/s, {status}")
    results = [_aggregate(reps) for reps in by_label.values()]

    def find(tool: str, mode: str, cap: bool = True) -> dict[str, Any]:
        return next(
            r
            for r in results
            if r["tool"] == tool and r["mode"] == mode and r.get("capture_env", True) == cap
        )

    summary = Table(title=f"W1: metric points/s, higher is better (median of {repeat})")
    for col in ("mode", "loopstack points/s", "MLflow points/s", "ratio", "target", "met?"):
        summary.add_column(col, justify="left" if col == "mode" else "right")
    rows = []
    for mode in ("per-call", "batch"):
        ls_r, ml_r = find("loopstack", mode), find("mlflow", mode)
        ratio = ls_r["points_per_s"] / ml_r["points_per_s"]
        met = ratio >= TARGETS[mode] and ls_r["verify_ok"] and ml_r["verify_ok"]
        rows.append(
            {
                "mode": mode,
                "loopstack_points_per_s": ls_r["points_per_s"],
                "mlflow_points_per_s": ml_r["points_per_s"],
                "ratio": ratio,
                "target": TARGETS[mode],
                "met": met,
            }
        )
        summary.add_row(
            mode,
            f"{ls_r['points_per_s']:,.0f}",
            f"{ml_r['points_per_s']:,.0f}",
            f"{ratio:,.1f}x",
            f">= {TARGETS[mode]:g}x",
            "[green]yes[/green]" if met else "[red]NO[/red]",
        )
    console.print(summary)

    detail = Table(
        title="W1: what each side ran (timed: run create + params + points + end; median repeat)"
    )
    for col in (
        "side",
        "runs x params x points",
        "points",
        "wall s",
        "CPU s",
        "points/s (min-max)",
        "calls",
        "mean call latency",
        "non-logging ms/run",
        "cold 1st run",
        "verified",
    ):
        detail.add_column(
            col, justify="left" if col in ("side", "runs x params x points") else "right"
        )
    for r in results:
        what = "log_metric" if r["mode"] == "per-call" else "log_batch"
        detail.add_row(
            r["label"],
            f"{r['runs']} x {r['params']} x {r['points_per_run']:,}",
            f"{r['points']:,}",
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{_si(r['points_per_s_min'])}-{_si(r['points_per_s_max'])}",
            f"{r['logging_calls']:,}",
            f"{_latency(r['mean_call_latency_us'])} ({what})",
            f"{r['per_run_overhead_ms']:.1f}",
            f"{r['cold_first_run_s'] * 1e3:.0f} ms",
            "yes" if r["verify_ok"] else "[red]NO[/red]",
        )
    console.print(detail)
    ls_pc, ml_pc = find("loopstack", "per-call"), find("mlflow", "per-call")
    console.print(
        f"per-call mean log_metric latency: loopstack "
        f"{ls_pc['mean_call_latency_us']:.2f} µs (buffered; flushed at run end), "
        f"MLflow {ml_pc['mean_call_latency_us'] / 1e3:.2f} ms "
        f"({ml_pc['mean_call_latency_us'] / ls_pc['mean_call_latency_us']:,.0f}x)"
    )
    if not a.no_env_variant:
        off = find("loopstack", "per-call", False)
        cost = (
            (runs * a.points / ls_pc["points_per_s"] - runs * a.points / off["points_per_s"])
            / runs
            * 1e3
        )
        console.print(
            f"capture_env (on above): {cost:+.1f} ms per run vs off "
            f"({ls_pc['points_per_s']:,.0f} vs {off['points_per_s']:,.0f} points/s); "
            f"one-time per process {ls_pc['env_capture_first_s'] * 1e3:.0f} ms "
            f"(paid in the excluded warm-up), then "
            f"{ls_pc['env_capture_again_s'] * 1e3:.2f} ms per run"
        )
    console.print(
        "MLflow per-call ran a scaled-down subset: throughput is compared, not wall "
        "time. Excluded on both sides: interpreter start, imports, and the warm-up "
        "(DB open + migration + one throwaway run)."
    )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "summary": rows,
                    "results": results,
                    "source": _source_state(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "repeat": repeat,
                    "load_average_at_start": load[0],
                },
                indent=2,
            )
        )
        console.print(f"wrote {a.json}")
    ok = all(r["verify_ok"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
