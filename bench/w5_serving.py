"""W5: HTTP single-row predict, loopstack beside its peers, concurrency 1 and 32.

    python bench/w5_serving.py [--duration 15] [--only loopstack,mlflow,bare] [--json PATH]

One HistGradientBoostingClassifier (30 seeded float features) is trained here once and
served by each system in its own format: `loopstack serve` (REST predict and OIP v2
infer; with and without the prediction log and with enrichment when `loopstack serve`
has those options), `mlflow models serve --env-manager local` (sklearn flavor, predict_proba),
BentoML with and without adaptive batching, MLServer (mlserver-sklearn) and a bare
Starlette endpoint (the limit). The peers run from their own environments
(``bash bench/setup_serving_env.sh``: bench/.venv, bench/.venv-bentoml,
bench/.venv-mlserver); loopstack from this interpreter.

Each server runs one worker process pinned to core 0 (``taskset -c 0``), with one
BLAS/OpenMP thread, no access log where the system has a switch for it; wrk
(``taskset -c 1``, one thread) sends the same single-row JSON body, for a warm-up and then
``--duration`` seconds per point. Each server must answer the reference probabilities
before it is loaded. Prints req/s, p50, p99 and errors per point, the ratios against
MLflow, BentoML with batching and bare Starlette, and the targets; writes everything as
JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _peers import BENCH_PYTHON

BENCH = Path(__file__).resolve().parent
BENTOML_PYTHON = str(BENCH / ".venv-bentoml" / "bin" / "python")
MLSERVER_PYTHON = str(BENCH / ".venv-mlserver" / "bin" / "python")
N_FEATURES = 30
COLUMNS = [f"f{i:02d}" for i in range(N_FEATURES)]
MODEL_NAME = "w5"
SERVER_CORE, LOAD_CORE = "0", "1"
#: the environment every server gets: one BLAS/OpenMP thread, no warnings, no telemetry
SERVER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "True",
}
#: the peers whose p99 at c=32 loopstack's must beat (bare Starlette is the limit, not a peer)
PEERS = ("mlflow", "bentoml", "bentoml-batch", "mlserver")
SYSTEMS = (
    "bare",
    "mlflow",
    "bentoml",
    "bentoml-batch",
    "mlserver",
    "loopstack",
    "loopstack-v2",
    "loopstack-nolog",
    "loopstack-enrich",
    "loopstack-nobatch",
)
#: rows run only when --only names them
OPT_IN = ("loopstack-nobatch",)


LABELS = {
    "loopstack-nolog": "loopstack REST, no prediction log",
    "loopstack-enrich": "loopstack REST, enrichment",
    "loopstack-nobatch": "loopstack REST, --max-batch-size 1",
}
#: the enrichment row's feature view and entity key (its rows read from the online store)
FEATURE_VIEW, ENTITY_KEY = "w5_features", "row_id"


@dataclass
class Target:
    """One row of the table: a URL on a server, the body wrk sends, how to read the answer."""

    key: str
    label: str
    path: str
    body: dict[str, Any]
    proba: Callable[[Any], list[float]]  # the answer's probabilities of the one row


@dataclass
class Server:
    """A command that serves one or more targets; started, checked, loaded, stopped."""

    key: str
    python: str  # the interpreter it needs (checked before starting)
    command: Callable[[Path, int], list[str]]
    targets: list[Target]
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path, int], None] | None = None
    notes: list[str] = field(default_factory=list)


# -- the model ---------------------------------------------------------------------------------
def train(seed: int = 0) -> tuple[Any, Any]:
    """The classifier and its training frame (30 float features, a non-linear label)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20_000, N_FEATURES))
    logit = x[:, 0] * x[:, 1] + np.sin(x[:, 2]) + 0.5 * x[:, 3:10].sum(axis=1) - x[:, 10] ** 2
    y = (logit + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    frame = pd.DataFrame(x, columns=COLUMNS)
    return HistGradientBoostingClassifier(random_state=seed).fit(frame, y), frame


def predict_cost(model: Any, frame: Any) -> dict[str, float]:
    """In-process ``predict_proba`` per call on a numpy array, 1 and 32 rows, one thread."""
    from threadpoolctl import threadpool_limits

    costs = {}
    with threadpool_limits(1):
        for n in (1, 32):
            rows = frame.to_numpy()[:n]
            for _ in range(50):
                model.predict_proba(rows)
            t = time.perf_counter()
            reps = 300
            for _ in range(reps):
                model.predict_proba(rows)
            costs[f"{n}_rows_ms"] = (time.perf_counter() - t) / reps * 1e3
    return costs


# -- the systems -------------------------------------------------------------------------------
def _v2_proba(answer: Any) -> list[float]:
    out = next(o for o in answer["outputs"] if o["name"] == "predict_proba")
    return [float(v) for v in out["data"]]


def tensor(row: list[float]) -> dict[str, Any]:
    """The row as one OIP v2 [1, 30] FP64 tensor."""
    return {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}


def serve_help(python: str) -> str:
    """``loopstack serve --help`` of this interpreter's loopstack (the flags it has today)."""
    proc = subprocess.run(
        [python, "-m", "loopstack.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    return proc.stdout + proc.stderr


def flag(help_text: str, name: str) -> bool:
    """Whether ``--name`` is among the options the help lists."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", help_text) is not None


def loopstack_servers(home: Path, frame: Any, row_index: int) -> list[Server]:
    """The loopstack servers: default flags (REST + OIP v2), then each variant it has."""
    help_text = serve_help(sys.executable)
    record = {c: float(v) for c, v in frame.iloc[row_index].items()}
    base = ["--model", f"models:/{MODEL_NAME}/1", "--workers", "1", "--no-access-log"]

    def command(extra: list[str]) -> Callable[[Path, int], list[str]]:
        head = [sys.executable, "-m", "loopstack.cli", "serve", *base, *extra]
        return lambda _work, port: [*head, "--port", str(port)]

    def rest(key: str, label: str) -> Target:
        return Target(
            key,
            label,
            f"/endpoints/{MODEL_NAME}/predict",
            {"records": [record]},
            lambda a: [float(v) for v in a["probabilities"][0]],
        )

    row = [record[c] for c in COLUMNS]
    v2 = Target(
        "loopstack-v2",
        "loopstack OIP v2",
        f"/v2/models/{MODEL_NAME}/infer",
        {"inputs": [tensor(row)]},
        _v2_proba,
    )
    env = {"LOOPSTACK_HOME": str(home)}
    has_log_flag = flag(help_text, "--no-prediction-log")
    default = Server(
        "loopstack",
        sys.executable,
        command([]),
        [rest("loopstack", "loopstack REST"), v2],
        env,
        notes=["loopstack serve: --workers 1 --no-access-log, its defaults otherwise"],
    )
    servers = [default]
    batching = [f for f in ("--max-batch-size", "--batch-latency-ms") if flag(help_text, f)]
    default.notes.append(
        f"batching options present: {', '.join(batching)} (their defaults used)"
        if batching
        else "no batching options in this loopstack serve"
    )
    if has_log_flag:
        default.notes.append("prediction log: on (the default); the -nolog row turns it off")
        servers.append(
            Server(
                "loopstack-nolog",
                sys.executable,
                command(["--no-prediction-log"]),
                [rest("loopstack-nolog", LABELS["loopstack-nolog"])],
                env,
            )
        )
    else:
        default.notes.append("no --no-prediction-log option: prediction-log row skipped")
    if batching:
        servers.append(
            Server(
                "loopstack-nobatch",
                sys.executable,
                command(["--max-batch-size", "1"]),
                [rest("loopstack-nobatch", LABELS["loopstack-nobatch"])],
                env,
            )
        )
    if flag(help_text, "--enrich-config"):
        config = home.parent / "enrich.json"
        default.notes.append(
            "enrichment row: --enrich-config (fail_closed), the 30 features read from a "
            "SQLite online store by one int64 key; the request carries the key only"
        )
        servers.append(
            Server(
                "loopstack-enrich",
                sys.executable,
                command(["--enrich-config", str(config)]),
                [
                    Target(
                        "loopstack-enrich",
                        LABELS["loopstack-enrich"],
                        f"/endpoints/{MODEL_NAME}/predict",
                        {"records": [{ENTITY_KEY: row_index}]},
                        lambda a: [float(v) for v in a["probabilities"][0]],
                    )
                ],
                env,
                prepare=lambda work, _port: prepare_enrichment(home, frame, config),
            )
        )
    else:
        default.notes.append("no --enrich-config option in this loopstack serve: row skipped")
    return servers


def prepare_enrichment(home: Path, frame: Any, config: Path, rows: int = 1_000) -> None:
    """A feature view of the model's 30 columns by ``row_id`` (the first ``rows`` rows of
    ``frame``, an hour old), materialized into a SQLite online store; and the
    ``--enrich-config`` file that names them."""
    from datetime import timedelta

    import pandas as pd

    from loopstack.features import Entity, FeatureStore, FeatureView, Field, FileSource

    now = datetime.now(UTC).replace(microsecond=0)
    source = home.parent / "features.parquet"
    table = frame.head(rows).copy()
    table.insert(0, ENTITY_KEY, range(len(table)))
    table.insert(1, "event_timestamp", pd.Timestamp(now - timedelta(hours=1)))
    table.to_parquet(source)
    online_url = f"sqlite:///{home.parent / 'online.db'}"
    store = FeatureStore(online_url=online_url)
    entity = Entity("row", join_keys=[ENTITY_KEY])
    view = FeatureView(
        FEATURE_VIEW,
        entities=[entity],
        source=FileSource(source, "event_timestamp"),
        schema=[Field(c, "float64") for c in COLUMNS],
    )
    store.apply([entity, view])
    store.materialize(now - timedelta(days=1), now + timedelta(minutes=1))
    config.write_text(
        json.dumps(
            {
                "mode": "fail_closed",
                "features": [f"{FEATURE_VIEW}:{c}" for c in COLUMNS],
                "online_url": online_url,
            }
        )
    )


def peer_servers(model_path: Path, record: dict[str, float]) -> list[Server]:
    """bare Starlette, mlflow models serve, BentoML (plain and batched), MLServer."""
    row = [record[c] for c in COLUMNS]
    cols_env = {"W5_MODEL": str(model_path), "W5_COLUMNS": ",".join(COLUMNS)}
    records = {"records": [record]}

    def first_row(answer: Any) -> list[float]:
        return [float(v) for v in answer[0]]

    bare = Server(
        "bare",
        BENCH_PYTHON,
        lambda work, port: [
            BENCH_PYTHON,
            "-m",
            "uvicorn",
            "_w5_bare:app",
            "--factory",
            "--app-dir",
            str(BENCH),
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        [
            Target(
                "bare",
                "bare Starlette (limit)",
                "/predict",
                records,
                lambda a: [float(v) for v in a["probabilities"][0]],
            )
        ],
        cols_env,
        notes=["bare: uvicorn, 1 worker, predict_proba in the event loop, no access log"],
    )

    def mlflow_prepare(work: Path, _port: int) -> None:
        script = (
            "import sys, joblib, mlflow.sklearn\n"
            "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2],"
            " pyfunc_predict_fn='predict_proba', skops_trusted_types=sys.argv[3:])\n"
        )
        trusted = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
        _check_call(
            [BENCH_PYTHON, "-c", script, str(model_path), str(work / "mlflow-model"), trusted]
        )

    mlflow = Server(
        "mlflow",
        BENCH_PYTHON,
        lambda work, port: [
            str(Path(BENCH_PYTHON).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(work / "mlflow-model"),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        [
            Target(
                "mlflow",
                "mlflow models serve",
                "/invocations",
                {"dataframe_records": [record]},
                lambda a: [float(v) for v in a["predictions"][0]],
            )
        ],
        notes=["mlflow: sklearn flavor saved with pyfunc_predict_fn='predict_proba', --workers 1"],
    )

    def bento(key: str, label: str, service: str) -> Server:
        return Server(
            key,
            BENTOML_PYTHON,
            lambda work, port: [
                str(Path(BENTOML_PYTHON).parent / "bentoml"),
                "serve",
                f"_w5_bento:{service}",
                "--working-dir",
                str(BENCH),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            [Target(key, label, "/predict", records, first_row)],
            cols_env,
        )

    plain = bento("bentoml", "BentoML", "Plain")
    plain.notes.append("bentoml: workers=1, access log off; batching: max_batch_size 32")
    batched = bento("bentoml-batch", "BentoML (batching)", "Batched")

    def mlserver_prepare(work: Path, port: int) -> None:
        root = work / "mlserver"
        (root / MODEL_NAME).mkdir(parents=True, exist_ok=True)
        shutil.copy(model_path, root / MODEL_NAME / "model.joblib")
        (root / MODEL_NAME / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": MODEL_NAME,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        (root / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                    "parallel_workers": 1,
                    "debug": False,  # MLServer logs each request (uvicorn access log) in debug
                }
            )
        )

    mlserver = Server(
        "mlserver",
        MLSERVER_PYTHON,
        lambda work, port: [
            str(Path(MLSERVER_PYTHON).parent / "mlserver"),
            "start",
            str(work / "mlserver"),
        ],
        [
            Target(
                "mlserver",
                "MLServer",
                f"/v2/models/{MODEL_NAME}/infer",
                {"inputs": [tensor(row)], "outputs": [{"name": "predict_proba"}]},
                _v2_proba,
            )
        ],
        prepare=mlserver_prepare,
        notes=["mlserver: mlserver-sklearn, parallel_workers 1 (its default), OIP v2 tensor"],
    )
    mlflow.prepare = mlflow_prepare
    return [bare, mlflow, plain, batched, mlserver]


# -- running -----------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_call(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=_server_env({}))
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()[-2000:]}")


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOOPSTACK_", "MLFLOW_", "W5_"))
    }
    return {**env, **SERVER_ENV, **extra}


def pinned(core: str, argv: list[str], pin: bool) -> list[str]:
    """``argv`` under ``taskset -c core`` (when pinning is possible)."""
    return ["taskset", "-c", core, *argv] if pin else argv


def post(url: str, body: bytes, timeout: float = 10.0) -> Any:
    """The JSON answer of one POST (raises on a non-2xx status)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def wait_correct(
    proc: subprocess.Popen[bytes], url: str, target: Target, expected: list[float], limit: float
) -> str | None:
    """None once the server answers ``expected`` (to 1e-9), else why not."""
    body = json.dumps(target.body).encode()
    deadline = time.monotonic() + limit
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode} before answering"
        try:
            got = target.proba(post(url, body))
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except (OSError, ValueError, KeyError, TypeError, StopIteration, IndexError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if len(got) == len(expected) and all(
                abs(g - e) <= 1e-9 for g, e in zip(got, expected, strict=True)
            ):
                return None
            return f"wrong prediction: {got}, expected {expected}"
        time.sleep(0.5)
    return f"not ready after {limit:.0f} s ({last})"


LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


def _duration_us(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}[match.group(2)]
    return float(match.group(1)) * scale


def parse_wrk(out: str) -> dict[str, Any]:
    """req/s, p50/p90/p99 (ms), request count and every error count of a ``wrk --latency`` run."""
    result: dict[str, Any] = {}
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{out}")
    result["rps"] = float(rps.group(1))
    result["requests"] = int(total.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+\w+)", out, re.M)
        result[f"p{pct}_ms"] = _duration_us(m.group(1)) / 1e3 if m else None
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(g) for g in sock.groups()) if sock else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    result["errors"] = result["socket_errors"] + result["non_2xx"]
    return result


def run_wrk(url: str, script: Path, concurrency: int, seconds: float, pin: bool) -> dict[str, Any]:
    """One wrk run (one thread, ``concurrency`` connections) against ``url``."""
    argv = pinned(
        LOAD_CORE,
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        pin,
    )
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    result = parse_wrk(proc.stdout)
    result["wrk_output"] = proc.stdout
    return result


def server_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of the server's
    tree: ``root`` and its descendants (the workers it started; exited ones not counted)."""
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid...
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime, in ticks
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    return sum(cpu.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops the server's process group (it and whatever workers it started)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def measure_server(
    server: Server,
    work: Path,
    expected: list[float],
    args: argparse.Namespace,
    pin: bool,
    wanted: set[str],
) -> dict[str, Any]:
    """Start ``server``, check and load each wanted target at each concurrency, stop it."""
    results: dict[str, Any] = {}
    targets = [t for t in server.targets if t.key in wanted]
    if not targets:
        return results
    if not Path(server.python).exists():
        why = f"no environment at {server.python}: run `bash bench/setup_serving_env.sh`"
        return {t.key: {"label": t.label, "skipped": why} for t in targets}
    port = free_port()
    sdir = work / server.key
    sdir.mkdir(parents=True, exist_ok=True)
    if server.prepare:
        try:
            server.prepare(sdir, port)
        except Exception as exc:  # noqa: BLE001 - a row that cannot be set up is reported
            why = f"setup failed: {type(exc).__name__}: {exc}"
            print(f"  {server.key}: {why}", file=sys.stderr)
            return {t.key: {"label": t.label, "skipped": why} for t in targets}
    log_path = sdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            pinned(SERVER_CORE, server.command(sdir, port), pin),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(
                {
                    **server.env,  # as if its venv were activated (mlflow execs `uvicorn`)
                    "PATH": f"{Path(server.python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                    "VIRTUAL_ENV": str(Path(server.python).parent.parent),
                }
            ),
            cwd=sdir,
            start_new_session=True,
        )
    try:
        for target in targets:
            url = f"http://127.0.0.1:{port}{target.path}"
            problem = wait_correct(proc, url, target, expected, args.start_timeout)
            if problem:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
                print(f"  {target.label}: {problem}\n    " + "\n    ".join(tail), file=sys.stderr)
                results[target.key] = {"label": target.label, "skipped": problem}
                continue
            script = sdir / f"{target.key}.lua"
            script.write_text(LUA.format(body=json.dumps(target.body)))
            points = {}
            for c in args.concurrency:
                run_wrk(url, script, c, args.warmup, pin)  # warm-up, not kept
                cpu = server_cpu_s(proc.pid)
                point = run_wrk(url, script, c, args.duration, pin)
                cpu = server_cpu_s(proc.pid) - cpu
                done = point["requests"]
                point["cpu_ms_per_request"] = cpu * 1e3 / done if done else None
                point["loadavg_1m"] = os.getloadavg()[0]
                points[str(c)] = point
                print(
                    f"  {target.label:<36} c={c:<3} {point['rps']:>9.1f} req/s  "
                    f"p50 {point['p50_ms']:.2f} ms  p99 {point['p99_ms']:.2f} ms  "
                    f"errors {point['errors']}  server CPU {_ms(point['cpu_ms_per_request'])} "
                    f"ms/req  load {point['loadavg_1m']:.1f}",
                    flush=True,
                )
            results[target.key] = {"label": target.label, "points": points}
    finally:
        stop(proc)
    return results


# -- the report --------------------------------------------------------------------------------
def _point(results: dict[str, Any], key: str, c: int) -> dict[str, Any] | None:
    point: dict[str, Any] | None = results.get(key, {}).get("points", {}).get(str(c))
    return point


def report(results: dict[str, Any], concurrency: list[int]) -> dict[str, Any]:
    """Prints the table and the targets; returns the targets' verdicts."""
    refs = {"MLflow": "mlflow", "BentoML-b": "bentoml-batch", "bare": "bare"}
    print()
    print(
        f"{'system':<36}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU ms/req':>11}" + "".join(f"{'x ' + name:>12}" for name in refs)
    )
    for key in SYSTEMS:
        entry = results.get(key)
        if not entry:
            continue
        if "skipped" in entry:
            print(f"{entry['label']:<36}  skipped: {entry['skipped']}")
            continue
        for c in concurrency:
            p = _point(results, key, c)
            if p is None:
                continue
            ratios = ""
            for ref in refs.values():
                r = _point(results, ref, c)
                ratios += f"{p['rps'] / r['rps']:>11.2f}x" if r and r["rps"] else f"{'-':>12}"
            print(
                f"{entry['label']:<36}{c:>5}{p['rps']:>10.1f}{p['p50_ms']:>9.2f}"
                f"{p['p99_ms']:>9.2f}{p['errors']:>8}{_ms(p['cpu_ms_per_request']):>11}{ratios}"
            )
    verdicts: dict[str, Any] = {}
    ls32, ls1 = _point(results, "loopstack", 32), _point(results, "loopstack", 1)

    def verdict(name: str, value: float | None, target: str, met: bool | None) -> None:
        shown = "-" if value is None else f"{value:.2f}"
        state = "not measured" if met is None else ("met" if met else "NOT met")
        verdicts[name] = {"value": value, "target": target, "met": met}
        print(f"  {name:<44} {shown:>8}  target {target:<12} {state}")

    print("\nTargets (loopstack REST predict, default flags):")
    for name, ref, factor in (
        ("c=32 req/s vs mlflow models serve", "mlflow", 5.0),
        ("c=32 req/s vs BentoML (batching)", "bentoml-batch", 3.0),
    ):
        r = _point(results, ref, 32)
        value = ls32["rps"] / r["rps"] if ls32 and r and r["rps"] else None
        verdict(name, value, f">= {factor:g}x", None if value is None else value >= factor)
    peer_points = [_point(results, k, 32) for k in PEERS]
    worst = min((p["p99_ms"] for p in peer_points if p), default=None)
    verdict(
        f"c=32 p99 ms, lowest peer p99 {worst if worst is None else round(worst, 2)}",
        ls32["p99_ms"] if ls32 else None,
        "< every peer",
        None if not ls32 or worst is None else ls32["p99_ms"] < worst,
    )
    bare1 = _point(results, "bare", 1)
    value = ls1["p50_ms"] / bare1["p50_ms"] if ls1 and bare1 else None
    verdict("c=1 p50 vs bare Starlette", value, "<= 1.3x", None if value is None else value <= 1.3)
    print("\nVariants against loopstack REST (default flags: prediction log on, batching on):")
    shown = 0
    for key, what in (
        ("loopstack-nolog", "prediction log off"),
        ("loopstack-enrich", "enrichment on"),
        ("loopstack-nobatch", "batching off"),
    ):
        for c in concurrency:
            a, b = _point(results, key, c), _point(results, "loopstack", c)
            if a and b:
                print(
                    f"  {what:<19} c={c:<3} {a['rps']:.1f} vs {b['rps']:.1f} req/s, "
                    f"p50 {a['p50_ms']:.2f} vs {b['p50_ms']:.2f} ms, server CPU "
                    f"{_ms(a['cpu_ms_per_request'])} vs {_ms(b['cpu_ms_per_request'])} ms/req"
                )
                shown += 1
    if not shown:
        print("  (none measured)")
    return verdicts


def versions(python: str, modules: list[str]) -> dict[str, str]:
    """The installed versions of ``modules`` in the environment of ``python``."""
    if not Path(python).exists():
        return {}
    script = (
        "import json, sys\nfrom importlib.metadata import version\nout = {}\n"
        "for m in sys.argv[1:]:\n    try: out[m] = version(m)\n"
        "    except Exception: out[m] = 'missing'\nprint(json.dumps(out))\n"
    )
    proc = subprocess.run([python, "-c", script, *modules], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per point")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per point")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 32]
    )
    parser.add_argument("--only", default=None, help=f"comma-separated, of: {', '.join(SYSTEMS)}")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--json", default=None, help="results file (default: bench/results/)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()
    wanted = set(SYSTEMS) - set(OPT_IN) if not args.only else set(args.only.split(","))
    unknown = wanted - set(SYSTEMS)
    if unknown:
        parser.error(f"--only takes {', '.join(SYSTEMS)}; got {', '.join(sorted(unknown))}")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: `bash bench/setup_serving_env.sh` (apt-get install -y wrk)")
    pin = bool(shutil.which("taskset")) and len(os.sched_getaffinity(0)) >= 2
    import joblib
    import sklearn

    import loopstack

    # the peers and the limit predict on arrays; the model was fitted on a named frame
    warnings.filterwarnings("ignore", message="X does not have valid feature names")

    started = datetime.now(UTC)
    load_before = os.getloadavg()
    print(
        f"loopstack {loopstack.__file__}; Python {sys.version.split()[0]}; scikit-learn "
        f"{sklearn.__version__}; load average {load_before[0]:.2f}; "
        + ("servers on core 0, wrk on core 1" if pin else "NOT pinned (needs taskset, 2 cores)")
    )
    tmp = tempfile.mkdtemp(prefix="w5-serving-")
    work = Path(tmp)
    results: dict[str, Any] = {}
    notes: list[str] = []
    try:
        home = work / "home"
        os.environ["LOOPSTACK_HOME"] = str(home)
        model, frame = train()
        cost = predict_cost(model, frame)
        print(
            f"predict_proba in-process: {cost['1_rows_ms']:.2f} ms for 1 row, "
            f"{cost['32_rows_ms']:.2f} ms for 32 rows (one thread)"
        )
        model_path = work / "model.joblib"
        joblib.dump(model, model_path)
        record = {c: float(v) for c, v in frame.iloc[7].items()}
        expected = [float(v) for v in model.predict_proba(frame.iloc[[7]].to_numpy())[0]]
        with loopstack.start_run(experiment="w5") as run:
            run.log_model(model, name=MODEL_NAME, sample_input=frame.head(5))
        servers = peer_servers(model_path, record) + loopstack_servers(home, frame, 7)
        for server in servers:
            if not any(t.key in wanted for t in server.targets):
                continue
            notes.extend(server.notes)
            print(f"{server.key}:", flush=True)
            results.update(measure_server(server, work, expected, args, pin, wanted))
        offered = {t.key for s in servers for t in s.targets}
        for key in sorted(wanted - offered):
            results[key] = {"label": LABELS[key], "skipped": "this loopstack serve has no option"}
    finally:
        if args.keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    verdicts = report(results, args.concurrency)
    print("\nNotes:\n  " + "\n  ".join(notes))
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    out = (
        Path(args.json)
        if args.json
        else BENCH / "results" / (f"w5_serving-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "workload": "W5",
        "started": started.isoformat(),
        "args": vars(args),
        "pinned": pin,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "predict_proba_ms": cost,
        "versions": {
            "harness": versions(sys.executable, ["loopstack", "scikit-learn", "uvicorn"]),
            "bench": versions(BENCH_PYTHON, ["mlflow", "scikit-learn", "starlette", "uvicorn"]),
            "bentoml": versions(BENTOML_PYTHON, ["bentoml", "scikit-learn"]),
            "mlserver": versions(MLSERVER_PYTHON, ["mlserver", "mlserver-sklearn", "scikit-learn"]),
        },
        "notes": notes,
        "results": results,
        "targets": verdicts,
    }
    out.write_text(json.dumps(doc, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
