"""Async inference over HTTP: a real serving app with job workers scores queued jobs
with a registered scikit-learn model (SQLite and Redis queues), POSTs results to a
real callback server, refuses bad jobs before queueing, and finishes the job of a
worker process SIGKILLed mid-job exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopstack.server import create_serving_app
from loopstack.serving import EndpointSpec, ServingRuntime
from loopstack.serving.jobs import JobQueue, open_queue
from loopstack.store import open_stores
from tests.conftest import ThreadedServer, free_port
from tests.serving.conftest import eventually, log_models

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sql", "redis"])
def queue(request: pytest.FixtureRequest) -> Iterator[JobQueue]:
    if request.param == "sql":
        yield open_queue("sql", db=open_stores().db)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"lstest:{uuid.uuid4().hex[:10]}:"
    yield open_queue(url, prefix=prefix)
    import redis

    r = redis.Redis.from_url(url)
    for key in r.scan_iter(f"{prefix}*"):
        r.delete(key)


def _runtime() -> ServingRuntime:
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    assert runtime.ready, [e.error for e in runtime.endpoints]
    return runtime


def _finished(url: str, job_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}

    def done() -> bool:
        doc.update(httpx.get(f"{url}/endpoints/iris/jobs/{job_id}").json())
        return doc["status"] in ("succeeded", "failed")

    eventually(done)
    return doc


class _Callbacks(BaseHTTPRequestHandler):
    got: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_queued_job_is_scored_logged_and_called_back(queue: JobQueue) -> None:
    X, clf, _ = log_models()
    app = create_serving_app(_runtime(), start=False, job_queue=queue, async_workers=2)
    _Callbacks.got = []
    hook = HTTPServer(("127.0.0.1", 0), _Callbacks)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    records = X.head(4).to_dict("records")
    try:
        with ThreadedServer(app, lifespan="on") as server:
            sent = httpx.post(
                f"{server.url}/endpoints/iris/jobs",
                json={
                    "records": records,
                    "callback_url": f"http://127.0.0.1:{hook.server_port}/done",
                },
            )
            assert sent.status_code == 202, sent.text
            job_id = sent.json()["job_id"]
            assert sent.headers["Location"] == f"/endpoints/iris/jobs/{job_id}"
            assert sent.json()["status"] in ("queued", "running", "succeeded")
            doc = _finished(server.url, job_id)
            assert doc["status"] == "succeeded" and doc["tries"] == 1, doc
            result = doc["result"]
            assert result["predictions"] == clf.predict(X.head(4)).tolist()
            assert result["model_version"] == "1" and result["model_uri"] == "models:/iris/1"
            assert result["request_id"] == job_id and result["endpoint"] == "iris"
            assert doc["created_at"] <= doc["started_at"] <= doc["finished_at"]
            # the same answer the sync route gives
            sync = httpx.post(f"{server.url}/endpoints/iris/predict", json={"records": records})
            assert sync.json()["probabilities"] == result["probabilities"]
            eventually(lambda: bool(_Callbacks.got))
            assert _Callbacks.got[0]["job_id"] == job_id
            assert _Callbacks.got[0]["result"]["predictions"] == result["predictions"]
            eventually(lambda: queue.get(job_id).callback is not None)
            assert queue.get(job_id).callback == {"status": "delivered", "attempts": 1}
    finally:
        hook.shutdown()
        hook.server_close()
    plog = app.state.answerer.prediction_log  # flushed at the app's shutdown
    assert job_id in plog.read_predictions().column("request_id").to_pylist()


def test_a_callback_that_cannot_be_delivered_is_noted_and_the_job_still_succeeds(
    queue: JobQueue,
) -> None:
    X, _, _ = log_models()
    app = create_serving_app(_runtime(), start=False, job_queue=queue, async_workers=1)
    app.state.job_workers.callback_backoff_s = 0.05
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    with ThreadedServer(app, lifespan="on") as server:
        sent = httpx.post(
            f"{server.url}/endpoints/iris/jobs",
            json={"records": X.head(1).to_dict("records"), "callback_url": dead},
        )
        job_id = sent.json()["job_id"]
        eventually(lambda: queue.get(job_id).callback is not None)
        job = queue.get(job_id)
        assert job.status == "succeeded" and job.callback is not None
        assert job.callback["status"] == "failed" and job.callback["attempts"] == 3
        assert "Connect" in job.callback["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("nope", {"records": [{"a": 1}]}, 404, "nope"),
        ("iris", {"records": [{"sepal length (cm)": 1.0}]}, 422, "missing column(s)"),
        ("iris", {"rows": []}, 422, "exactly one of"),
        ("iris", {"records": [{"a": 1}], "callback_url": "file:///etc"}, 422, "callback_url"),
    ],
)
def test_bad_jobs_are_refused_before_queueing(
    queue: JobQueue, path: str, body: dict[str, Any], status: int, says: str
) -> None:
    X, _, _ = log_models()
    if "callback_url" in body:
        body = {**body, "records": X.head(1).to_dict("records")}
    app = create_serving_app(_runtime(), start=False, job_queue=queue)
    with ThreadedServer(app) as server:
        answer = httpx.post(f"{server.url}/endpoints/{path}/jobs", json=body)
        assert answer.status_code == status, answer.text
        assert says in answer.text
        assert queue.claim("probe", 5) is None  # nothing was queued
        missing = httpx.get(f"{server.url}/endpoints/iris/jobs/{uuid.uuid4().hex}")
        assert missing.status_code == 404


def test_a_server_without_a_queue_says_how_to_get_one() -> None:
    log_models()
    with ThreadedServer(create_serving_app(_runtime(), start=False)) as server:
        answer = httpx.post(f"{server.url}/endpoints/iris/jobs", json={"records": [{"a": 1}]})
        assert answer.status_code == 404 and "--async-workers" in answer.text


@pytest.mark.slow
def test_a_worker_process_killed_mid_job_leaves_it_to_another_that_finishes_it_once(
    tmp_path: Path,
) -> None:
    X, clf, _ = log_models()
    db = open_stores().db
    queue = open_queue("sql", db=db)
    front = create_serving_app(_runtime(), start=False, job_queue=queue)  # no workers
    with ThreadedServer(front) as server:
        sent = httpx.post(
            f"{server.url}/endpoints/iris/jobs", json={"records": X.head(2).to_dict("records")}
        )
        job_id = sent.json()["job_id"]
        env = {k: v for k, v in os.environ.items() if k.startswith("LOOPSTACK_") or k == "PATH"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        out = tmp_path / "claimed.txt"
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "serving" / "_job_proc.py"),
                f"sql:{db.url}",
                "-",
                "doomed",
                str(out),
                "1.0",
                "hang",
            ],
            env=env,
        )
        eventually(lambda: out.exists() and bool(out.read_text()), timeout_s=60)
        assert out.read_text().split() == ["claimed", job_id]
        assert httpx.get(f"{server.url}/endpoints/iris/jobs/{job_id}").json()["status"] == (
            "running"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        back = create_serving_app(_runtime(), start=False, job_queue=queue, async_workers=1)
        with ThreadedServer(back, lifespan="on"):
            doc = _finished(server.url, job_id)
        assert doc["status"] == "succeeded" and doc["tries"] == 2
        assert doc["result"]["predictions"] == clf.predict(X.head(2)).tolist()
        time.sleep(0.2)
        assert queue.get(job_id).finished_at == doc["finished_at"]  # finished once
