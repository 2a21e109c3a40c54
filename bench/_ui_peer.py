"""MLflow's own server and UI on the bench's data, for ``bench/ui_bench.py --peer``.

The runs are logged into an MLflow SQLite tracking store by bench/_ui_mlflow.py, run
in bench/.venv (MLflow is never imported here, nor into loopstack); ``mlflow server``
from bench/.venv serves them (one worker) with the UI build its package ships. The same
things are measured as on loopstack's side: ``runs/search`` over HTTP (each request
under ``timeout`` seconds, else reported as over it) and, in headless Chromium, the
runs page's first 100 rows, a filter typed in its search box, a sort by a metric and
by a param (its "Sort" menu: the metric columns are off-screen in its grid), and the
comparison of 100 runs (its parallel-coordinates plot and run table drawn).

MLflow's selectors were found by trial in the browser on MLflow 3.17.2's UI: rows are
ag-grid's ``.ag-row[row-index=k]``, the search box ``input[data-testid=search-box]``.
A change is "shown" when the grid's first rows name the runs MLflow's own
``runs/search`` returns for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from _peers import BENCH_PYTHON, missing_env

HERE = Path(__file__).resolve().parent
#: the run names of the grid's first ``n`` rows, in row order
_NAMES = """(n) => { const out = [];
  for (let k = 0; k < n; k++) {
    const cells = document.querySelectorAll(`.ag-row[row-index="${k}"]`);
    if (!cells.length) break;
    const m = /run-\\d{6}/.exec([...cells].map((c) => c.textContent).join(" "));
    out.push(m ? m[0] : "");
  }
  return out; }"""
_SHOWN = f"(want) => JSON.stringify(({_NAMES})(want.length)) === JSON.stringify(want)"


def make_data(home: Path, runs: int, seed: int, bulk: bool = True) -> str:
    """The experiment of ``runs`` runs in ``home/mlflow.db`` (made, or reused); its id.
    ``bulk``: the first run through MLflow's client, the rest as copies of its rows."""
    why = missing_env(BENCH_PYTHON)
    if why:
        raise SystemExit(why)
    home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [
            BENCH_PYTHON,
            str(HERE / "_ui_mlflow.py"),
            "--uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts",
            str(home / "artifacts"),
            "--runs",
            str(runs),
            "--seed",
            str(seed),
            *(["--bulk"] if bulk else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout.splitlines()
    print("\n".join(out[:-1]), flush=True)
    return out[-1].strip()


def start_server(home: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """``mlflow server`` (bench/.venv, one worker) on ``home/mlflow.db``, once it answers."""
    from ui_bench import wait_for_health

    store = f"sqlite:///{home / 'mlflow.db'}"
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [BENCH_PYTHON, "-m", "mlflow", "server", "--backend-store-uri", store]
        + ["--default-artifact-root", str(home / "artifacts"), "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", "1"],
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        stdout=log,
        stderr=log,  # its request log: a pipe nobody reads would fill and stall it
        start_new_session=True,  # its own process group: it runs uvicorn and job runners
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(proc, url, 180, f"mlflow server (its log: {home / 'server.log'})")
    return proc, url


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL to it 10 s later (uvicorn waits for
    the request it is busy with), and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class Server:
    """``mlflow server`` that can be restarted on its port: a search past the timeout
    keeps its one worker busy for minutes, which the next measurement must not wait on."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.proc, self.url = start_server(home, port)

    def restart(self) -> None:
        """Stop it (and the search it is still busy with) and start it again."""
        self.stop()
        self.proc, self.url = start_server(self.home, self.port)

    def stop(self) -> None:
        """Stop it and every process it started (uvicorn, its job runners): stopping
        ``mlflow server`` alone leaves its uvicorn running the search it was busy with."""
        stop_group(self.proc)


def measure_api(
    url: str,
    eid: str,
    repeat: int,
    runs: int,
    timeout: float,
    searches: dict[str, Any],
    on_timeout: Any = None,
) -> dict[str, dict[str, float]]:
    """MLflow's ``runs/search`` (100 rows) for each of ``searches`` (name -> body); a
    search over ``timeout`` seconds is reported as ``{"timeout_s": timeout}`` and not
    tried again, and ``on_timeout()`` (a restart) frees the worker still busy with it."""
    import httpx
    from ui_bench import PAGE, _stats, page_50_ms

    http = httpx.Client(base_url=url, timeout=timeout)

    def search(**body: Any) -> dict[str, Any]:
        r = http.post(
            "/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [eid], "max_results": PAGE, **body},
        )
        r.raise_for_status()
        out = r.json()
        if len(out.get("runs", [])) != PAGE:
            raise SystemExit(f"expected {PAGE} runs from MLflow for {body}; got {len(out['runs'])}")
        return out

    def timed(body: dict[str, Any]) -> float:
        t0 = time.perf_counter()
        search(**body)
        return (time.perf_counter() - t0) * 1000

    results: dict[str, dict[str, float]] = {}
    for name, body in searches.items():
        if body is None and runs < 50 * PAGE:
            continue  # no page 50
        run = (lambda: page_50_ms(search)) if body is None else (lambda b=body: timed(b))
        samples: list[float] = []
        try:
            for _ in range(repeat + 1):  # the first is an untimed warm-up
                samples.append(run())
        except httpx.TimeoutException:
            results[name] = {"timeout_s": timeout}
            if on_timeout is not None:
                on_timeout()
            continue
        results[name] = _stats(samples[1:])
    return results


def _expected(url: str, eid: str, body: dict[str, Any], timeout: float = 600) -> list[str]:
    import httpx

    r = httpx.post(
        f"{url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [eid], "max_results": 100, **body},
        timeout=timeout,
    )
    r.raise_for_status()
    return [run["info"]["run_name"] for run in r.json()["runs"]]


def measure_browser(
    url: str, eid: str, repeat: int, filter_: str, timeout: float, on_timeout: Any = None
) -> dict[str, dict[str, float]]:
    """MLflow's runs page and comparison in headless Chromium. A page whose rows take
    over ``timeout`` seconds (the search it makes does: that search is timed first) is
    reported as ``{"timeout_s": timeout}``, and ``on_timeout()`` frees the server."""
    import httpx
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import sync_playwright
    from ui_bench import CHROMIUM, CHROMIUM_ARGS, _stats

    def expected(body: dict[str, Any]) -> list[str] | None:
        try:
            return _expected(url, eid, body, timeout)
        except httpx.TimeoutException:
            if on_timeout is not None:
                on_timeout()
            return None

    first = _expected(url, eid, {"order_by": ["attributes.start_time DESC"]})
    filtered = _expected(url, eid, {"filter": filter_, "order_by": ["attributes.start_time DESC"]})
    by_metric = expected({"order_by": ["metrics.m7 DESC"]})
    by_param = expected({"order_by": ["params.p05 DESC"]})
    ids = [
        run["run_id"]
        for run in _runs_info(url, eid)  # the same 100 runs loopstack compares: the newest
    ]
    runs_url = f"{url}/#/experiments/{eid}/runs"
    compare_url = (
        f"{url}/#/compare-runs?runs={urllib.parse.quote(json.dumps(ids))}"
        f"&experiments={urllib.parse.quote(json.dumps([eid]))}"
    )
    wait_ms = timeout * 1000
    out: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        try:

            def on_page(target: str, ready: list[str], do: Any, done: Any) -> float:
                page = context.new_page()
                try:
                    page.goto(target)
                    page.wait_for_function(_SHOWN, arg=ready[:5], timeout=wait_ms)
                    t0 = time.perf_counter()
                    do(page)
                    done(page)
                    return (time.perf_counter() - t0) * 1000
                finally:
                    # the UI keeps its view (sort, filter) in local storage: a fresh start
                    page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
                    page.close()

            def series(fn: Any) -> dict[str, float]:
                try:
                    fn()
                    return _stats([fn() for _ in range(repeat)])
                except PageTimeout:
                    if on_timeout is not None:
                        on_timeout()
                    return {"timeout_s": timeout}

            def rows(want: list[str]) -> Any:
                return lambda page: page.wait_for_function(_SHOWN, arg=want, timeout=wait_ms)

            def fresh_page() -> float:
                page = context.new_page()
                try:
                    t0 = time.perf_counter()
                    page.goto(runs_url)
                    page.wait_for_function(_SHOWN, arg=first, timeout=wait_ms)
                    return (time.perf_counter() - t0) * 1000
                finally:
                    page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
                    page.close()

            out["runs page: first 100 rows shown"] = series(fresh_page)

            def type_filter(page: Any) -> None:
                page.fill("input[data-testid='search-box']", filter_)
                page.press("input[data-testid='search-box']", "Enter")

            out["runs page: filter update"] = series(
                lambda: on_page(runs_url, first, type_filter, rows(filtered))
            )
            for key, want in (("metrics.m7", by_metric), ("params.p05", by_param)):

                def sort(page: Any, key: str = key) -> None:
                    page.click("button:has-text('Sort:')")
                    page.click(f"[role=menu] >> text='{key.split('.')[1]}'")

                if want is None:  # its search alone ran past the timeout
                    out[f"runs page: sort by {key}"] = {"timeout_s": timeout}
                    continue
                out[f"runs page: sort by {key}"] = series(
                    lambda s=sort, w=want: on_page(runs_url, first, s, rows(w))
                )

            def compare() -> float:
                page = context.new_page()
                try:
                    t0 = time.perf_counter()
                    page.goto(compare_url)
                    page.wait_for_function(
                        "() => document.querySelectorAll('.js-plotly-plot g.parcoords g.y-axis')"
                        ".length >= 2 && [...document.querySelectorAll("
                        "'table.mlflow-compare-run-table')].some((t) => t.rows[0] && "
                        f"t.rows[0].cells.length > {len(ids)})",
                        timeout=wait_ms,
                    )
                    return (time.perf_counter() - t0) * 1000
                finally:
                    page.close()

            out["compare 100 runs: rendered"] = series(compare)
        finally:
            context.close()
            browser.close()
    return out


def _runs_info(url: str, eid: str) -> list[dict[str, Any]]:
    import httpx

    r = httpx.post(
        f"{url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [eid], "max_results": 100},
        timeout=600,
    )
    r.raise_for_status()
    return [run["info"] for run in r.json()["runs"]]


if __name__ == "__main__":
    sys.exit("run bench/ui_bench.py --peer")
