"""The web UI at scale: one experiment of 100,000 runs x 10 metrics x 20 params.

Creates the data through loopstack's own tracking API (``TrackingClient``: a run with
its 20 params, one ``log_batch`` of its 10 metrics, its end; seeded, so two runs of the
bench make the same values), starts ``loopstack server`` on it, and measures

* over HTTP, ``POST /api/v1/runs/search`` (100 rows): the first page, a filter on a
  metric, ordered by a metric, ordered by a param, and page 50 (after 49 Next);
* in headless Chromium (Debian's, driven by Playwright): the first 100 rows shown from
  a fresh page, a filter typed and submitted, a click on a metric's column header, a
  click on a param's column header, and the comparison of 100 runs rendered.

Every figure is the median of ``--repeat`` tries after one untimed warm-up, with the
min-max range. The data is kept in ``--home`` (reused when it already holds an
experiment of ``--runs`` runs), else made in a temp directory and removed.

``--peer`` puts MLflow's own server and UI beside it (bench/_ui_peer.py): the same runs
(same seed, same values) logged through MLflow's client into an MLflow SQLite store by
bench/.venv's mlflow (bench/setup_env.sh; MLflow is never imported into loopstack),
``mlflow server`` from that venv, and the same searches and pages measured on it, each
under ``--peer-timeout`` seconds; both are printed side by side with MLflow's time over
loopstack's. Logging through MLflow's client runs at ~3-10 runs/s here (hours for
100,000), so by default only the first run goes through it and the others are copies
of the rows it wrote (bench/_ui_mlflow.py ``--bulk``); ``--via-api`` logs every run
through each side's client. ``--peer-home`` keeps MLflow's store for the next run.

    python bench/ui_bench.py                  # 100,000 runs (creating them takes minutes)
    python bench/ui_bench.py --runs 20000 --home /tmp/ui20k
    python bench/ui_bench.py --home /tmp/ui100k --peer --peer-home /tmp/mlf100k   # + MLflow
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

EXPERIMENT = "ui-bench"
N_METRICS = 10
N_PARAMS = 20
PAGE = 100
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_MS = {"api": 300.0, "compare": 1000.0}


# ----------------------------------------------------------------------------------------
# the data
# ----------------------------------------------------------------------------------------
def make_data(home: Path, runs: int, seed: int, via_api: bool = False) -> str:
    """Create (or find) the experiment of ``runs`` runs under ``home``; its id."""
    os.environ["LOOPSTACK_HOME"] = str(home)
    for var in ("LOOPSTACK_TRACKING_URI", "LOOPSTACK_DB_URL", "LOOPSTACK_TOKEN"):
        os.environ.pop(var, None)
    from loopstack.tracking import Metric, TrackingClient

    client = TrackingClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        have = _count_runs(client, exp.experiment_id)
        if have == runs:
            print(f"data: reusing {runs:,} runs in {home}", flush=True)
            return exp.experiment_id
        raise SystemExit(f"{home} holds {have:,} runs in {EXPERIMENT!r}, not {runs:,}")
    eid = client.create_experiment(EXPERIMENT)
    rng = random.Random(seed)
    t0 = time.perf_counter()
    if via_api:
        for i in range(runs):
            run_params, metrics = _run_values(rng, i)
            run = client.create_run(eid, run_name=f"run-{i:06d}", params=run_params)
            now = int(time.time() * 1000)
            client.log_batch(run.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
            client.set_terminated(run.run_id)
            _progress(i + 1, t0)
    else:
        _bulk(client.store, client.get_experiment(eid).artifact_location, eid, runs, seed, t0)
    print(f"data: {runs:,} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    return eid


def _run_values(rng: random.Random, i: int) -> tuple[dict[str, Any], dict[str, float]]:
    """A run's 20 params and 10 metrics."""
    params: dict[str, Any] = {
        "model": MODELS[i % len(MODELS)],
        "lr": f"{10 ** -rng.randint(1, 5):g}",
        "depth": str(rng.randint(2, 12)),
    }
    params.update({f"p{j:02d}": str(rng.randint(0, 999)) for j in range(N_PARAMS - len(params))})
    return params, {f"m{k}": rng.random() for k in range(N_METRICS)}


def _progress(done: int, t0: float) -> None:
    if done % 10_000 == 0:
        rate = done / (time.perf_counter() - t0)
        print(f"data: {done:,} runs ({rate:,.0f} runs/s)", flush=True)


def seeded_runs(runs: int, seed: int, now: int) -> Any:
    """The bench's runs, seeded: (run_id, name, start, end, params, metrics) for each,
    in the order the random numbers are drawn, so loopstack's bulk rows and the MLflow
    peer's runs (bench/_ui_mlflow.py) hold the same values."""
    rng = random.Random(seed)
    for i in range(runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        run_params, metrics = _run_values(rng, i)
        begin = now - (runs - i) * 1000
        yield run_id, f"run-{i:06d}", begin, begin + rng.randint(1000, 99_000), run_params, metrics


def _bulk(store: Any, location: str, eid: str, runs: int, seed: int, t0: float) -> None:
    """The runs' rows (runs, tags, params, metric points and latest values) inserted
    through the metadata database's audited ``write``, 2,000 runs a transaction (one
    audit event each): the rows ``create_run``/``log_batch``/``set_terminated`` make,
    written ~100x faster than one run at a time."""
    db, chunk = store.db, 2000
    made = seeded_runs(runs, seed, int(time.time() * 1000))
    for start in range(0, runs, chunk):
        rows: dict[str, list[tuple[Any, ...]]] = {k: [] for k in _COLUMNS}
        for run_id, name, begin, end, run_params, metrics in itertools.islice(made, chunk):
            rows["runs"].append(
                (
                    run_id,
                    int(eid),
                    name,
                    "FINISHED",
                    begin,
                    end,
                    "active",
                    None,
                    f"{location}/{run_id}/artifacts",
                    "ui-bench",
                    None,
                )
            )
            rows["run_tags"].append((run_id, "mlflow.runName", name))
            rows["params"].extend((run_id, k, v) for k, v in run_params.items())
            points = [(run_id, k, v, 0, begin, 0) for k, v in metrics.items()]
            rows["metrics"].extend(points)
            rows["latest_metrics"].extend(points)

        def write(conn: Any, rows: dict[str, list[tuple[Any, ...]]] = rows) -> None:
            for table, columns in _COLUMNS.items():
                db.backend.bulk_insert(conn, table, columns, rows[table])

        db.write(
            write,
            actor="ui-bench",
            action="run.bulk_create",
            object_type="experiment",
            object_id=eid,
            payload={"runs": len(rows["runs"])},
        )
        _progress(start + len(rows["runs"]), t0)


MODELS = ["gbm", "rf", "mlp", "linear", "svm"]
_METRIC_COLUMNS = ("run_id", "key", "value", "step", "timestamp", "is_nan")
_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "run_id",
        "experiment_id",
        "name",
        "status",
        "start_time",
        "end_time",
        "lifecycle_stage",
        "deleted_time",
        "artifact_uri",
        "user_id",
        "parent_run_id",
    ),
    "run_tags": ("run_id", "key", "value"),
    "params": ("run_id", "key", "value"),
    "metrics": ("run_id", "key", "value", "step", "timestamp", "is_nan"),
    "latest_metrics": _METRIC_COLUMNS,
}


def _count_runs(client: Any, eid: str) -> int:
    n, token = 0, None
    while True:
        found, token = client.store.search_runs([eid], max_results=50_000, page_token=token)
        n += len(found)
        if not token:
            return n


# ----------------------------------------------------------------------------------------
# the server
# ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``loopstack server`` on ``home`` at a free port, once it answers /health."""
    port = _free_port()
    env = {**os.environ, "LOOPSTACK_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopstack.cli", "server", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(proc, url, 60, "loopstack server")
    return proc, url


def wait_for_health(proc: subprocess.Popen[bytes], url: str, seconds: float, what: str) -> None:
    """Return once ``url``/health answers 200; SystemExit if ``proc`` exits first or
    ``seconds`` pass (the process is then killed)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"{what} exited with {proc.returncode}: {err}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not answer /health within {seconds:.0f} s")


# ----------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------
def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
    }


def _timed(fn: Any, repeat: int) -> dict[str, float]:
    fn()  # warm-up, untimed
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return _stats(samples)


FILTER = "metrics.m3 > 0.5 and params.model = 'gbm'"


def page_50_ms(search: Any) -> float:
    """Milliseconds of ``search(page_token=...)`` for page 50, after 49 untimed pages."""
    token = None
    for _ in range(49):
        token = search(page_token=token)["next_page_token"]
    t0 = time.perf_counter()
    search(page_token=token)
    return (time.perf_counter() - t0) * 1000


def measure_api(url: str, eid: str, repeat: int, runs: int) -> dict[str, dict[str, float]]:
    """``runs/search`` through HTTP: the five searches the runs page makes."""
    import httpx

    http = httpx.Client(base_url=url, timeout=600)

    def search(check: int | None = PAGE, **body: Any) -> dict[str, Any]:
        r = http.post(
            "/api/v1/runs/search", json={"experiment_ids": [eid], "max_results": PAGE, **body}
        )
        r.raise_for_status()
        out = r.json()
        if check is not None and len(out["runs"]) != check:
            raise SystemExit(f"expected {check} runs from {body}; got {len(out['runs'])}")
        return out

    out = {
        "first page": _timed(lambda: search(), repeat),
        f"filter `{FILTER}`": _timed(lambda: search(filter=FILTER), repeat),
        "order by metrics.m7 DESC": _timed(lambda: search(order_by=["metrics.m7 DESC"]), repeat),
        "order by params.p05 ASC": _timed(lambda: search(order_by=["params.p05 ASC"]), repeat),
        "order by params.model DESC (5 values)": _timed(
            lambda: search(order_by=["params.model DESC"]), repeat
        ),
    }
    if runs >= 50 * PAGE:
        page_50_ms(search)  # warm-up
        out["page 50 (token from page 49)"] = _stats([page_50_ms(search) for _ in range(repeat)])
    return out


def measure_browser(url: str, eid: str, repeat: int) -> dict[str, dict[str, float]]:
    """The runs page and the comparison in headless Chromium."""
    import httpx
    from playwright.sync_api import sync_playwright

    ids = [
        r["run_id"]
        for r in httpx.post(
            f"{url}/api/v1/runs/search",
            json={"experiment_ids": [eid], "max_results": 100},
            timeout=600,
        ).json()["runs"]
    ]
    runs_url = f"{url}/#/experiments/{eid}?size={PAGE}"
    compare_url = f"{url}/#/compare?experiment={eid}&runs={','.join(ids)}"
    rows = f"#runs:not([data-old]) tbody tr:nth-child({PAGE})"
    out: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:

            def fresh(target: str, selector: str) -> float:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                try:
                    t0 = time.perf_counter()
                    page.goto(target)
                    if selector.startswith("() =>"):
                        page.wait_for_function(selector, timeout=120_000)
                    else:
                        page.wait_for_selector(selector, timeout=120_000)
                    return (time.perf_counter() - t0) * 1000
                finally:
                    page.close()

            def series(fn: Any) -> dict[str, float]:
                fn()
                return _stats([fn() for _ in range(repeat)])

            out["runs page: first 100 rows shown"] = series(lambda: fresh(runs_url, rows))

            def action(do: Any, done: str) -> float:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                try:
                    page.goto(runs_url)
                    page.wait_for_selector(rows, timeout=120_000)
                    page.eval_on_selector("#runs", "t => t.dataset.old = '1'")
                    t0 = time.perf_counter()
                    do(page)
                    page.wait_for_selector(done, timeout=120_000)
                    return (time.perf_counter() - t0) * 1000
                finally:
                    page.close()

            def type_filter(page: Any) -> None:
                page.fill("#filter", FILTER)
                page.press("#filter", "Enter")

            out["runs page: filter update"] = series(
                lambda: action(type_filter, "#runs:not([data-old]) tbody tr")
            )
            for kind, key in (("metrics", "m7"), ("params", "p05")):
                header = f'th[data-kind="{kind}"][data-key="{key}"] button'
                sorted_ = (
                    f'#runs:not([data-old]) th[data-kind="{kind}"][data-key="{key}"]'
                    f'[aria-sort="descending"]'
                )
                out[f"runs page: sort by {kind}.{key}"] = series(
                    lambda h=header, s=sorted_: action(lambda pg: pg.click(h), s)
                )
            n_charts = N_METRICS
            out["compare 100 runs: rendered"] = series(
                lambda: fresh(
                    compare_url,
                    "() => document.querySelector('#compare-params') && document"
                    f".querySelectorAll('#compare-charts svg').length >= {n_charts} && "
                    "document.querySelectorAll('#compare-parcoords g.pc-run').length"
                    f" >= {len(ids)}",
                )
            )
        finally:
            browser.close()
    return out


# ----------------------------------------------------------------------------------------
def _row(name: str, s: dict[str, float], target: float | None) -> str:
    ok = "" if target is None else (" ✓" if s["median_ms"] < target else " ✗")
    return (
        f"| {name} | {s['median_ms']:,.0f} ms ({s['min_ms']:,.0f}-{s['max_ms']:,.0f})"
        f"{ok} | {'' if target is None else f'< {target:,.0f} ms'} |"
    )


#: MLflow's ``runs/search`` bodies for the rows of loopstack's (None: page 50, paged to)
PEER_SEARCHES: dict[str, Any] = {
    "first page": {},
    f"filter `{FILTER}`": {"filter": FILTER},
    "order by metrics.m7 DESC": {"order_by": ["metrics.m7 DESC"]},
    "order by params.p05 ASC": {"order_by": ["params.p05 ASC"]},
    "order by params.model DESC (5 values)": {"order_by": ["params.model DESC"]},
    "page 50 (token from page 49)": None,
}


def _cell(s: dict[str, float] | None) -> str:
    if s is None:
        return ""
    if "timeout_s" in s:
        return f"> {s['timeout_s']:,.0f} s (timed out)"
    return f"{s['median_ms']:,.0f} ms ({s['min_ms']:,.0f}-{s['max_ms']:,.0f})"


def _ratio(ours: dict[str, float] | None, theirs: dict[str, float] | None) -> str:
    if not ours or not theirs:
        return ""
    if "timeout_s" in theirs:
        return f"> {theirs['timeout_s'] * 1000 / ours['median_ms']:,.0f}x"
    return f"{theirs['median_ms'] / ours['median_ms']:,.1f}x"


def print_side_by_side(results: dict[str, Any]) -> None:
    """loopstack's and MLflow's figures in one table, MLflow's time over loopstack's."""
    print("| measured | loopstack | MLflow | MLflow / loopstack |\n| --- | --- | --- | --- |")
    for ours, theirs, prefix in (
        ("api", "mlflow_api", "`runs/search` (HTTP), "),
        ("browser", "mlflow_browser", "Chromium: "),
    ):
        mine, peer = results.get(ours, {}), results.get(theirs, {})
        for name in mine:
            row = (_cell(mine[name]), _cell(peer.get(name)), _ratio(mine[name], peer.get(name)))
            print(f"| {prefix}{name} | {' | '.join(row)} |")


def measure_peer(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """MLflow's server and UI on the same shape of data (bench/_ui_peer.py)."""
    import _ui_peer

    peer_home = args.peer_home or home / "mlflow"
    eid = _ui_peer.make_data(peer_home, args.runs, args.seed, bulk=not args.via_api)
    server = _ui_peer.Server(peer_home, _free_port())
    repeat = args.peer_repeat or args.repeat
    try:
        out: dict[str, Any] = {
            "mlflow_api": _ui_peer.measure_api(
                server.url,
                eid,
                repeat,
                args.runs,
                args.peer_timeout,
                PEER_SEARCHES,
                on_timeout=server.restart,
            )
        }
        if not args.no_browser:
            out["mlflow_browser"] = _ui_peer.measure_browser(
                server.url, eid, repeat, FILTER, args.peer_timeout, on_timeout=server.restart
            )
        return out
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    """Make the data, serve it, measure; print a Markdown table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--home", type=Path, help="keep (and reuse) the data here")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument(
        "--via-api",
        action="store_true",
        help="create each run through TrackingClient (create_run, log_batch, "
        "set_terminated: ~70 runs/s here) instead of 2,000 runs a transaction; with "
        "--peer, MLflow's runs each through its client too (~3-10 runs/s)",
    )
    ap.add_argument("--no-browser", action="store_true", help="the HTTP figures only")
    ap.add_argument(
        "--peer",
        action="store_true",
        help="also MLflow's server and UI (bench/.venv) on the same shape of data "
        "(its first run logged through MLflow's client, the rest copies of its rows)",
    )
    ap.add_argument("--peer-home", type=Path, help="keep (and reuse) MLflow's store here")
    ap.add_argument(
        "--peer-repeat",
        type=int,
        help="timed repeats on MLflow's side (default --repeat; its page 50 pages "
        "through 49 pages of seconds each)",
    )
    ap.add_argument(
        "--peer-timeout",
        type=float,
        default=120.0,
        help="seconds an MLflow request or page may take before it is reported as over it",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.runs < 2 * PAGE:
        ap.error(f"--runs must be at least {2 * PAGE}")
    home = args.home or Path(tempfile.mkdtemp(prefix="ui-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        eid = make_data(home, args.runs, args.seed, args.via_api)
        proc, url = start_server(home)
        results: dict[str, Any] = {
            "runs": args.runs,
            "api": measure_api(url, eid, args.repeat, args.runs),
        }
        if not args.no_browser:
            results["browser"] = measure_browser(url, eid, args.repeat)
        proc.terminate()
        proc.wait(timeout=30)
        proc = None  # MLflow measured alone on the machine, not beside an idle loopstack
        if args.peer:
            results.update(measure_peer(args, home))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"\n{args.runs:,} runs x {N_METRICS} metrics x {N_PARAMS} params, one experiment; "
        f"median of {args.repeat} (min-max)\n"
    )
    print("| loopstack | time | target |\n| --- | --- | --- |")
    for name, s in results["api"].items():
        print(_row(f"`runs/search` (HTTP), {name}", s, TARGET_MS["api"]))
    for name, s in results.get("browser", {}).items():
        print(_row(f"Chromium: {name}", s, TARGET_MS["compare"] if "compare" in name else None))
    if args.peer:
        print()
        print_side_by_side(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
