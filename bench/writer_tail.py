"""Write latency under contention: 8 processes log metrics to one ``loopstack server`` on SQLite.

Each writer process sends ``--requests`` single-metric batches (``POST
/api/v1/runs/{id}/batch``) to its own run, one after another, timing each request
on the client (a 503 is retried after its Retry-After and timed as one request
from the first send to the final answer). The latencies of all writers are pooled
and printed as p50 / p90 / p99 / max, with the number of 503 answers.

    python bench/writer_tail.py [--writers 8] [--requests 200] [--workers 1]

The server runs over a fresh SQLite database in a temp ``LOOPSTACK_HOME``; nothing
is asserted, the numbers are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(home: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSTACK_")}
    env["LOOPSTACK_HOME"] = str(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopstack.cli", "server", "--port", str(port)]
        + ["--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def _writer(args: tuple[str, str, int, float]) -> tuple[list[float], int]:
    url, run_id, requests, start_at = args
    latencies, busy = [], 0
    with httpx.Client(base_url=url + "/api/v1", timeout=120) as http:
        http.get("/runs/" + run_id)  # connect before the clock starts
        time.sleep(max(0.0, start_at - time.time()))
        for step in range(requests):
            body = {
                "metrics": [
                    {
                        "key": "m",
                        "value": float(step),
                        "step": step,
                        "timestamp": 1_700_000_000_000 + step,
                    }
                ]
            }
            t0 = time.perf_counter()
            while True:
                resp = http.post(f"/runs/{run_id}/batch", json=body)
                if resp.status_code != 503:
                    break
                busy += 1
                time.sleep(float(resp.headers.get("retry-after", "1")))
            if resp.status_code >= 400:
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
            latencies.append(time.perf_counter() - t0)
    return latencies, busy


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ls-writer-tail-") as tmp:
        proc, url = _start_server(Path(tmp) / "home", opts.workers)
        try:
            with httpx.Client(base_url=url + "/api/v1", timeout=60) as http:
                exp = http.post("/experiments", json={"name": "tail"}).json()["experiment_id"]
                runs = [
                    http.post("/runs", json={"experiment_id": exp}).json()["run_id"]
                    for _ in range(opts.writers)
                ]
            start_at = time.time() + 2.0
            jobs = [(url, run, opts.requests, start_at) for run in runs]
            ctx = multiprocessing.get_context("spawn")
            started = time.perf_counter()
            with ctx.Pool(opts.writers) as pool:
                results = pool.map(_writer, jobs)
            elapsed = time.perf_counter() - started - 2.0
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    lat = sorted(x for r, _ in results for x in r)
    busy = sum(b for _, b in results)
    ms = {q: 1000 * _pct(lat, q) for q in (0.5, 0.9, 0.99)}
    print(
        f"{opts.writers} writers x {opts.requests} requests, {opts.workers} server worker(s): "
        f"p50 {ms[0.5]:.1f} ms, p90 {ms[0.9]:.1f} ms, p99 {ms[0.99]:.1f} ms, "
        f"max {1000 * lat[-1]:.1f} ms, mean {1000 * statistics.fmean(lat):.1f} ms; "
        f"{busy} answers 503; {len(lat) / elapsed:.0f} requests/s"
    )


if __name__ == "__main__":
    main()
