"""Health and reads stay live under write contention (SQLite).

Another connection holds the SQLite write lock (``BEGIN IMMEDIATE`` on the same file),
60 writes are sent at once, and while they queue for the lock ``/health``,
``/v2/health/live`` and reads answer. Every write that cannot get the lock answers 503
with Retry-After before the lock is released, in words that name neither the database
file nor its URL; once the lock is released the same writes succeed, and every
acknowledged point is stored.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopstack.server import create_app
from loopstack.server._app import _WAITING_WRITERS
from tests.conftest import ThreadedServer

WRITES = 60
#: the test's write budget: long enough that the queued writes are still waiting
#: while health and reads answer, short enough for a quick test
WAIT_S = "8"


@pytest.fixture
def served(
    request: pytest.FixtureRequest, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, object]]:
    """The app in a thread over this test's SQLite file, and its ``Database``."""
    monkeypatch.setenv("LOOPSTACK_WRITE_WAIT_S", getattr(request, "param", WAIT_S))
    app = create_app()
    with ThreadedServer(app) as server:
        yield server.url, app.state.stores.db


def _batch(step: int) -> dict:
    return {"metrics": [{"key": "m", "value": float(step), "step": step, "timestamp": step}]}


def test_health_and_reads_answer_while_writers_queue(
    served: tuple[str, object], ls_home: Path
) -> None:
    url, db = served
    db_file = ls_home / "loopstack.db"
    with httpx.Client(base_url=url, timeout=60) as http:
        exp = http.post("/api/v1/experiments", json={"name": "contention"}).json()
        run_id = http.post("/api/v1/runs", json={"experiment_id": exp["experiment_id"]}).json()[
            "run_id"
        ]

        holder = sqlite3.connect(db_file, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held by someone else
        answers: dict[int, httpx.Response] = {}
        try:

            def write(step: int) -> None:
                answers[step] = http.post(f"/api/v1/runs/{run_id}/batch", json=_batch(step))

            threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITES)]
            for t in threads:
                t.start()
            # Wait (without a clock) until the server's write queue is full: the
            # writes beyond it were told 503 at once, these wait for the lock.
            while db.writers_waiting < _WAITING_WRITERS and any(  # type: ignore[attr-defined]
                t.is_alive() for t in threads
            ):
                threading.Event().wait(0.01)
            assert db.writers_waiting == _WAITING_WRITERS  # type: ignore[attr-defined]

            health = http.get("/health")
            live = http.get("/v2/health/live")
            run = http.get(f"/api/v1/runs/{run_id}")
            history = http.get(f"/api/v1/runs/{run_id}/metrics/m")
            # ... all answered before any queued write gave up: they never waited for one
            assert db.writers_waiting == _WAITING_WRITERS  # type: ignore[attr-defined]
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert live.status_code == 200 and live.json() == {"live": True}
            assert run.status_code == 200 and run.json()["run_id"] == run_id
            assert history.status_code == 200

            for t in threads:
                t.join(timeout=120)
            assert len(answers) == WRITES  # every write answered, the lock still held
        finally:
            holder.rollback()
            holder.close()

        for step, resp in sorted(answers.items()):
            assert resp.status_code == 503, (step, resp.status_code, resp.text)
            assert float(resp.headers["retry-after"]) > 0
            message = resp.json()["message"]
            assert "busy" in message
            for leak in (str(db_file), db_file.name, "sqlite"):
                assert leak not in message, message

        # The lock is free: the same writes go through, and every acknowledged one is kept.
        for step in range(WRITES):
            assert http.post(f"/api/v1/runs/{run_id}/batch", json=_batch(step)).status_code == 200
        points = http.get(f"/api/v1/runs/{run_id}/metrics/m").json()["metrics"]
        assert sorted((p["step"], p["value"]) for p in points) == [
            (s, float(s)) for s in range(WRITES)
        ]


@pytest.mark.parametrize("served", ["1"], indirect=True)
def test_mlflow_routes_answer_503_with_retry_after_under_a_held_lock(
    served: tuple[str, object], ls_home: Path
) -> None:
    url, _ = served
    with httpx.Client(base_url=url, timeout=60) as http:
        exp = http.post("/api/2.0/mlflow/experiments/create", json={"name": "m"}).json()
        run = http.post(
            "/api/2.0/mlflow/runs/create", json={"experiment_id": exp["experiment_id"]}
        ).json()["run"]
        holder = sqlite3.connect(ls_home / "loopstack.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            body = {"run_id": run["info"]["run_id"], "key": "k", "value": 1.0, "timestamp": 1}
            resp = http.post("/api/2.0/mlflow/runs/log-metric", json=body)
            got = http.get("/api/2.0/mlflow/runs/get", params={"run_id": run["info"]["run_id"]})
        finally:
            holder.rollback()
            holder.close()
    assert resp.status_code == 503
    assert resp.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert float(resp.headers["retry-after"]) > 0
    assert "loopstack.db" not in resp.json()["message"]
    assert got.status_code == 200  # a read under the same held lock
