"""The serving hot path under load: `loopstack serve` beside a bare Starlette endpoint.

Trains a HistGradientBoostingClassifier on 30 float features in a fresh
``LOOPSTACK_HOME``, registers it, and serves it with ``loopstack serve`` (one worker,
pinned to core 0 with ``taskset``); a bare Starlette app calling ``predict_proba`` on
the same model (a float array built from the records, no batching, no logging, on the
event loop) is the peer, and the same with ``predict_proba`` in a worker thread (as the
serving path calls the model) at concurrency 1. ``wrk`` (pinned to core 1) sends
single-row JSON requests:

- ``POST /endpoints/hgb/predict`` ``{"records": [{...30 floats...}]}``
- ``POST /v2/models/hgb/infer`` one ``[1, 30]`` FP64 tensor

at concurrency 32 (throughput) and 1 (latency), and prints req/s, p50 and p99.

    python bench/serving_hotpath.py [--duration 10] [--no-prediction-log] [--only predict]

Nothing is asserted; the numbers are printed. Needs ``wrk`` and ``taskset`` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

N_FEATURES = 30
BARE_APP = textwrap.dedent(
    """
    import json, os, warnings, anyio.to_thread, numpy as np, joblib
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    model = joblib.load(os.environ["BENCH_MODEL"])
    cols = [f"x{i}" for i in range(N_FEATURES)]
    async def predict(request):
        doc = json.loads(await request.body())
        X = np.array([[r[c] for c in cols] for r in doc["records"]], dtype="float64")
        return JSONResponse({"probabilities": model.predict_proba(X).tolist()})
    async def predict_in_thread(request):
        doc = json.loads(await request.body())
        X = np.array([[r[c] for c in cols] for r in doc["records"]], dtype="float64")
        proba = await anyio.to_thread.run_sync(model.predict_proba, X)
        return JSONResponse({"probabilities": proba.tolist()})
    async def health(request):
        return JSONResponse({"ok": True})
    app = Starlette(routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_thread", predict_in_thread, methods=["POST"]),
        Route("/health", health),
    ])
    """
).replace("N_FEATURES", str(N_FEATURES))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(
    url: str, body: str, connections: int, duration: int, workdir: Path, pid: int | None = None
) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %d\\nP99 %d\\n", latency:percentile(50),'
        " latency:percentile(99)))\n"
        'io.write(string.format("ERRS %d\\n", summary.errors.status))\n'
        "end\n"
    )
    cpu_before = _cpu_s(pid) if pid else 0.0
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = int(re.search(r"P50 (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    p99 = int(re.search(r"P99 (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    errs = int(re.search(r"ERRS (\d+)", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": errs}
    if pid:
        # requests per CPU-second of the server: what one dedicated core would sustain,
        # whatever else shares the machine
        cpu = _cpu_s(pid) - cpu_before
        result["server_cpu_s"] = round(cpu, 2)
        result["req_per_cpu_s"] = round(rps * duration / cpu, 1) if cpu else 0.0
    return result


def main() -> None:
    """Train, serve, load, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--no-prediction-log", action="store_true")
    parser.add_argument("--only", choices=["predict", "infer", "bare"], action="append")
    parser.add_argument("--extra", default="", help="extra arguments to loopstack serve")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH")
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    work = Path(tempfile.mkdtemp(prefix="loopstack-bench-serving-"))
    os.environ["LOOPSTACK_HOME"] = str(work / "home")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, N_FEATURES)), columns=[f"x{i}" for i in range(30)])
    y = (X["x0"] + X["x1"] * X["x2"] > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100).fit(X, y)
    joblib.dump(model, work / "model.joblib")
    import loopstack as ls

    with ls.start_run(experiment="bench") as run:
        run.log_model(model, name="hgb", artifact_path="hgb", sample_input=X.head(5))
    row = {c: float(v) for c, v in X.iloc[0].items()}
    bodies = {
        "predict": json.dumps({"records": [row]}),
        "infer": json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, N_FEATURES],
                        "datatype": "FP64",
                        "data": list(row.values()),
                    }
                ]
            }
        ),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_MODEL": str(work / "model.joblib")}
    wanted = args.only or ["bare", "predict", "infer"]
    results: dict[str, dict[str, dict[str, float]]] = {}
    if "bare" in wanted:
        (work / "bare_app.py").write_text(BARE_APP)
        port = _free_port()
        bare = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "bare_app:app",
             "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=work, env=env,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/predict"
            _wait(f"http://127.0.0.1:{port}/health", bare)
            _wrk(url, bodies["predict"], 4, 2, work)  # warm
            results["bare"] = {
                f"c{c}": _wrk(url, bodies["predict"], c, args.duration, work, bare.pid)
                for c in (32, 1)
            }
            # the same with predict_proba in a worker thread, as the serving path calls it
            results["bare_thread"] = {
                "c1": _wrk(f"{url}_thread", bodies["predict"], 1, args.duration, work, bare.pid)
            }
        finally:
            bare.terminate()
            bare.wait(10)
    if {"predict", "infer"} & set(wanted):
        port = _free_port()
        command = [
            "taskset", "-c", "0", sys.executable, "-m", "loopstack.cli", "serve",
            "--model", "models:/hgb/1", "--port", str(port), "--no-access-log",
            *(["--no-prediction-log"] if args.no_prediction_log else []),
            *args.extra.split(),
        ]  # fmt: skip
        served = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(f"{base}/v2/health/ready", served)
            paths = {"predict": "/endpoints/hgb/predict", "infer": "/v2/models/hgb/infer"}
            for name in ("predict", "infer"):
                if name not in wanted:
                    continue
                _wrk(base + paths[name], bodies[name], 4, 2, work)  # warm
                results[name] = {
                    f"c{c}": _wrk(
                        base + paths[name], bodies[name], c, args.duration, work, served.pid
                    )
                    for c in (32, 1)
                }
        finally:
            served.terminate()
            served.wait(20)
    print(json.dumps(results, indent=2))
    if "bare" in results:
        for name in ("predict", "infer"):
            if name in results:
                ratio = results[name]["c1"]["p50_ms"] / results["bare"]["c1"]["p50_ms"]
                print(f"{name}: p50 at concurrency 1 is {ratio:.2f}x the bare endpoint's")
                ratio = results[name]["c1"]["p50_ms"] / results["bare_thread"]["c1"]["p50_ms"]
                print(f"{name}: p50 at concurrency 1 is {ratio:.2f}x the bare threaded one's")


if __name__ == "__main__":
    main()
