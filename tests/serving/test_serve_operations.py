"""`loopstack serve` operated as a service: real processes on loopback.

HTTPS with a certificate made here, tokens and a rate limit through the CLI's flags; a
SIGTERM that lets the request in flight finish; a stored deployment switched blue-green,
canaried and rolled back under steady load without losing a request; a worker killed
under load and replaced by uvicorn's supervisor. Each test is bounded by a timeout, and
no assertion is on timing.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack import auth
from loopstack.serving import deployments
from loopstack.store import open_stores
from tests.conftest import free_port, server_output, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@dataclass
class Serve:
    """A running ``loopstack serve`` process."""

    proc: subprocess.Popen
    url: str
    verify: ssl.SSLContext | bool = True

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=30, **kw)


def start_serve(
    args: list[str], *, scheme: str = "http", verify: ssl.SSLContext | bool = True
) -> Serve:
    """``loopstack serve ARGS`` on a free port, once its readiness answered true 10 times
    in a row (each worker loads on its own: one true answer is one worker's)."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    command = [sys.executable, "-m", "loopstack.cli", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    served = Serve(proc, f"{scheme}://127.0.0.1:{port}", verify)
    _wait_ready(served)
    return served


def _wait_ready(served: Serve, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    in_a_row = 0
    with served.client() as client:
        while in_a_row < 10:
            assert served.proc.poll() is None, server_output(served.proc)
            assert time.monotonic() < deadline, f"not ready:\n{server_output(served.proc)}"
            try:
                ready = client.get("/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            in_a_row = in_a_row + 1 if ready else 0
            time.sleep(0.05 if ready else 0.2)


@pytest.fixture
def serve_proc() -> Iterator[Callable[..., Serve]]:
    """Starts ``loopstack serve`` processes; stops every one still running at the end."""
    started: list[Serve] = []

    def start(*args: str, **kw: Any) -> Serve:
        served = start_serve(list(args), **kw)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            print(server_output(served.proc)[-4000:])
        stop_server(served.proc)


def _iris() -> pd.DataFrame:
    return pd.DataFrame(load_iris(as_frame=True).data)


def _self_signed(directory: Path) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_https_tokens_and_a_rate_limit_through_the_cli(
    tmp_path: Path, serve_proc: Callable[..., Serve]
) -> None:
    if not Path("/usr/bin/openssl").exists():
        pytest.skip("the openssl CLI is needed to make a certificate")
    frame = _iris()
    y = load_iris().target
    with ls.start_run(experiment="ops") as run:
        model = LogisticRegression(max_iter=300).fit(frame, y)
        run.log_model(model, name="iris", artifact_path="iris", sample_input=frame.head(3))
    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    auth.create_project(db, "other", actor="root")
    auth.create_user(db, "bob", actor="root")
    auth.add_member(db, "other", "bob", "admin", actor="root")
    bob = auth.create_token(db, name="bob", user="bob", actor="root")[0]
    cert, key = _self_signed(tmp_path)
    trusted = ssl.create_default_context(cafile=cert)
    served = serve_proc(
        "--model",
        "models:/iris/1",
        "--ssl-certfile",
        cert,
        "--ssl-keyfile",
        key,
        "--auth",
        "--rate-limit",
        "0.2",
        "--rate-burst",
        "3",
        "--no-access-log",
        scheme="https",
        verify=trusted,
    )
    assert "auth:       viewer or higher in 'default'" in server_output(served.proc)
    body = {"records": frame.head(2).to_dict("records")}
    with served.client() as client:
        assert client.post("/endpoints/iris/predict", json=body).status_code == 401
        other = client.post(
            "/endpoints/iris/predict", json=body, headers={"Authorization": f"Bearer {bob}"}
        )
        assert other.status_code == 403, other.text
        as_root = {"Authorization": f"Bearer {root}"}
        answers = [
            client.post("/endpoints/iris/predict", json=body, headers=as_root) for _ in range(4)
        ]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200], answers[0].text
    assert answers[0].json()["predictions"] == model.predict(frame.head(2)).tolist()
    assert answers[3].status_code == 429 and int(answers[3].headers["Retry-After"]) >= 1
    # a client that does not trust the certificate is refused, and plain HTTP is no answer
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/health", verify=True)
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url.replace("https://", "http://") + "/health", timeout=5)


class Latch:
    """A model that answers ``2 * wait``; a row with ``wait > 0`` first touches
    ``started`` and blocks until ``release`` exists (a slow request the test controls)."""

    def __init__(self, started: str, release: str) -> None:
        self.started = started
        self.release = release

    def predict(self, frame: Any) -> Any:
        import pathlib
        import time as clock

        import numpy

        wait = numpy.asarray(frame["wait"], dtype="float64")
        if (wait > 0).any():
            pathlib.Path(self.started).touch()
            deadline = clock.monotonic() + 60
            while not pathlib.Path(self.release).exists() and clock.monotonic() < deadline:
                clock.sleep(0.02)
        return wait * 2


def _log_latch(tmp_path: Path) -> tuple[Path, Path]:
    import cloudpickle

    started, release = tmp_path / "started", tmp_path / "release"
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # the serving process need not import tests
    try:
        with ls.start_run(experiment="ops") as run:
            run.log_model(
                Latch(str(started), str(release)),
                name="latch",
                artifact_path="latch",
                sample_input=pd.DataFrame({"wait": [0.0]}),
            )
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    return started, release


def _eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:
        return False
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: Path, serve_proc: Callable[..., Serve], workers: int
) -> None:
    started, release = _log_latch(tmp_path)
    served = serve_proc(
        "--model", "models:/latch/1", "--graceful-timeout", "30", "--workers", str(workers)
    )
    slow: dict[str, Any] = {}

    def send() -> None:
        try:
            slow["answer"] = httpx.post(
                f"{served.url}/endpoints/latch/predict",
                json={"records": [{"wait": 1.0}, {"wait": 2.0}]},
                timeout=60,
            )
        except httpx.HTTPError as exc:  # the test fails on it below
            slow["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    _eventually(started.exists)  # the request is in the model now
    served.proc.send_signal(signal.SIGTERM)
    if workers == 1:
        # the server stops listening at once, while the request in flight still runs (with
        # several workers the supervisor holds the socket until they have all stopped)
        _eventually(lambda: _refused(served.url))
    elif Path("/proc/self/task").is_dir():  # the idle worker has stopped, the busy one not
        _eventually(lambda: len(_workers(served.proc.pid)) == 1)
    assert sender.is_alive() and served.proc.poll() is None
    release.touch()
    sender.join(timeout=60)
    assert "error" not in slow, slow
    answer = slow["answer"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [2.0, 4.0]
    # uvicorn re-raises the signal it handled once it has stopped: killed by SIGTERM, late
    assert served.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Traceback" not in server_output(served.proc)


# -- reliability under load -------------------------------------------------------------


@dataclass
class Load:
    """Client threads looping predictions; every answer kept."""

    url: str
    body: dict[str, Any]
    threads: int = 3
    answers: list[tuple[int, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)

    def _loop(self, key: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                # a fresh connection each time: a killed worker takes only what it holds
                got = httpx.post(
                    f"{self.url}/endpoints/churn-api/predict",
                    json=self.body,
                    headers={"X-Routing-Key": f"client-{key}-{n}"},
                    timeout=30,
                )
            except httpx.TransportError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.answers.append((got.status_code, got.json()))

    def __enter__(self) -> Load:
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(i,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(timeout=30)

    def more(self, n: int = 5) -> None:
        """Wait for ``n`` more answers (the load is flowing)."""
        seen = len(self.answers) + len(self.failures)
        _eventually(lambda: len(self.answers) + len(self.failures) >= seen + n)


def _two_churn_versions() -> pd.DataFrame:
    """churn/1 predicts iris classes 0-2, churn/2 the same shifted to 10-12: an answer's
    predictions say which version made them."""
    frame = _iris()
    y = load_iris().target
    with ls.start_run(experiment="ops") as run:
        for shift in (0, 10):
            model = LogisticRegression(max_iter=300).fit(frame, y + shift)
            run.log_model(
                model, name="churn", artifact_path=f"m{shift}", sample_input=frame.head(3)
            )
    return frame


def _check_consistent(answers: list[tuple[int, Any]]) -> set[str]:
    """Every answer a 200 whose version made its predictions; the versions seen."""
    bad = [a for a in answers if a[0] != 200]
    assert not bad, bad[:5]
    versions = set()
    for _, doc in answers:
        version = doc["model_version"]
        versions.add(version)
        low = {"1": 0, "2": 10}[version]
        assert all(low <= p <= low + 2 for p in doc["predictions"]), doc
    return versions


def test_switch_canary_and_rollback_under_load_lose_no_request(
    serve_proc: Callable[..., Serve],
) -> None:
    frame = _two_churn_versions()
    store = deployments()
    store.create("churn-api", "churn/1")
    served = serve_proc(
        "--deployment", "churn-api", "--workers", "2", "--refresh-s", "0.2", "--no-access-log"
    )
    body = {"records": frame.iloc[[0, 60, 120]].to_dict("records")}  # one row per class

    def now_serving(version: str) -> Callable[[], bool]:
        return lambda: (
            all(doc["model_version"] == version for _, doc in load.answers[-6:])
            and len(load.answers) >= 6
        )

    with Load(served.url, body) as load:
        load.more()
        store.set("churn-api", "churn/2")  # blue-green: green (2) answers once warm
        _eventually(now_serving("2"))
        load.more()
        store.canary("churn-api", "churn/1", weight=50)  # half the keys to version 1
        canaried = len(load.answers)
        _eventually(lambda: {d["arm"] for _, d in load.answers[canaried:]} >= {"canary"})
        load.more(10)
        store.rollback("churn-api")  # back to the revision before the canary
        _eventually(now_serving("2"))
        store.rollback("churn-api", to=1)  # and to before the switch: version 1 again
        _eventually(now_serving("1"))
        load.more()
    assert not load.failures, load.failures[:5]
    assert _check_consistent(load.answers) == {"1", "2"}
    arms = {(d["arm"], d["model_version"]) for _, d in load.answers[canaried:]}
    assert ("canary", "1") in arms and any(v == "2" for _, v in arms), arms


def _workers(pid: int) -> list[int]:
    """The uvicorn worker processes (spawned children) of ``pid``, on Linux."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except OSError:
                continue
    return found


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(
    serve_proc: Callable[..., Serve],
) -> None:
    if not Path("/proc/self/task").is_dir():
        pytest.skip("finding the worker processes needs Linux's /proc")
    frame = _two_churn_versions()
    deployments().create("churn-api", "churn/2")
    served = serve_proc("--deployment", "churn-api", "--workers", "2", "--no-access-log")
    workers = _workers(served.proc.pid)
    assert len(workers) == 2, workers
    body = {"records": frame.iloc[[0, 60, 120]].to_dict("records")}
    with Load(served.url, body, threads=3) as load:
        load.more(10)
        os.kill(workers[0], signal.SIGKILL)
        _eventually(lambda: len(set(_workers(served.proc.pid)) - {workers[0]}) == 2)
        load.more(20)  # the server kept answering (the survivor, then both)
        _wait_ready(served)  # the new worker loaded its own models: ready everywhere again
        load.more(10)
    replaced = set(_workers(served.proc.pid))
    assert workers[1] in replaced and workers[0] not in replaced and len(replaced) == 2
    # at most the requests the killed worker held (one per client thread) failed
    assert len(load.failures) <= load.threads, load.failures
    assert _check_consistent(load.answers) == {"2"}
