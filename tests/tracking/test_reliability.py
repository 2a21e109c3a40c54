"""Concurrency and crash safety of the tracking store (real processes, real databases)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import loopstack as ls
from loopstack.store import audit
from loopstack.store.metadata import Database
from loopstack.tracking import TrackingClient

WORKER = textwrap.dedent("""
    import sys
    from loopstack.tracking import Metric, TrackingClient
    run_id, (worker, points, batch) = sys.argv[1], map(int, sys.argv[2:5])
    client = TrackingClient()
    for start in range(0, points, batch):
        client.log_batch(run_id, metrics=[
            Metric(f"w{worker}", float(i), i, 1_700_000_000_000 + i)
            for i in range(start, min(start + batch, points))])
    print("done", flush=True)
""")

KILLED_WORKER = textwrap.dedent("""
    import loopstack as ls
    with ls.start_run(experiment="crash") as run:
        print("run", run.run_id, flush=True)
        step = 0
        while True:
            ls.log_metric("loss", 1.0 / (step + 1), step=step)
            if step % 37 == 36:
                ls.flush()
                print("flushed", step, flush=True)
            step += 1
""")


def _env() -> dict[str, str]:
    return dict(os.environ)


@pytest.mark.slow
def test_four_processes_logging_at_once_lose_nothing(use_db: str) -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("concurrent"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, run.run_id, str(w), "2000", "10"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    total = 0
    for w in range(4):
        history = client.get_metric_history(run.run_id, f"w{w}")
        assert [m.step for m in history] == list(range(2000))
        total += len(history)
    assert total == 8000
    assert client.get_run(run.run_id).metrics == {f"w{w}": 1999.0 for w in range(4)}
    assert audit.verify(client.store.db).ok  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(2))
def test_sigkill_mid_logging_loses_no_flushed_metric(use_db: str, attempt: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "run", proc.stderr.read() if proc.stderr else ""
    run_id = first[1]
    last_flushed = -1
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    time.sleep(random.uniform(1.0, 3.0))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    for line in lines:
        # a SIGKILL can cut the last line short: only whole lines count
        parts = line.split()
        if line.endswith("\n") and len(parts) == 2 and parts[0] == "flushed":
            last_flushed = int(parts[1])
    assert last_flushed > 0, "the worker never flushed before the kill"

    db = Database(use_db)  # a fresh open, as after a restart
    try:
        assert audit.verify(db).ok
        client = TrackingClient()
        steps = {m.step for m in client.get_metric_history(run_id, "loss")}
        assert set(range(last_flushed + 1)) <= steps
        assert client.get_run(run_id).status == "RUNNING"  # nobody ended it
    finally:
        db.dispose()


def test_a_locked_sqlite_database_is_waited_for_not_shown_as_a_traceback(
    ls_home: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("locked"))
    path = str(client.store.db.engine.url.database)  # type: ignore[attr-defined]
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(1.5, holder.rollback).start()
    start = time.monotonic()
    client.log_metric(run.run_id, "m", 1.0)  # waits for the lock, then succeeds
    assert time.monotonic() - start >= 1.0
    assert client.get_run(run.run_id).metrics == {"m": 1.0}
    holder.close()


def test_a_database_locked_past_every_retry_is_overloaded(
    ls_home: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack.store.metadata import _database, _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(_database, "_RETRY_DEADLINE_S", 0.5)
    url = f"sqlite:///{ls_home}/busy.db"
    db = Database(url)
    holder = sqlite3.connect(str(ls_home) + "/busy.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ls.Overloaded, match="stayed busy") as info:
            db.write(lambda c: None, actor="t", action="noop", object_type="t", object_id="1")
        assert info.value.status_code == 503
    finally:
        holder.rollback()
        holder.close()
        db.dispose()
    assert audit.verify(Database(url)).checked == 0  # nothing was written
