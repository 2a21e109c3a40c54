"""`loopstack serve` operated as a service, real processes on loopback: HTTPS with a
certificate made here, tokens and a rate limit through the CLI's flags; a SIGTERM that
lets the request in flight finish. Bounded by a timeout; no assertion is on timing."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack import auth
from loopstack.store import open_stores
from tests.conftest import server_output
from tests.serving.serve_procs import Serve, eventually, serve_proc, workers_of

__all__ = ["serve_proc"]  # the fixture, used by name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


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
    eventually(started.exists)  # the request is in the model now
    served.proc.send_signal(signal.SIGTERM)
    if workers == 1:
        # the server stops listening at once, while the request in flight still runs (with
        # several workers the supervisor holds the socket until they have all stopped)
        eventually(lambda: _refused(served.url))
    elif Path("/proc/self/task").is_dir():  # the idle worker has stopped, the busy one not
        eventually(lambda: len(workers_of(served.proc.pid)) == 1)
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
