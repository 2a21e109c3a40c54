"""Many writers, one server: 8 processes log metric points at once to one live
``loopstack server``, over SQLite and PostgreSQL, with loopstack's Python API and with the
real mlflow client. Afterwards every point is there, once, with its value: nothing lost,
nothing duplicated. A busy store may answer 503 with Retry-After (the clients retry);
a 500, or a 503 that does not say when to retry, fails the writer. Throughput is printed,
never asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WRITERS = 8
SINGLE = 30  # points per writer logged one request at a time
STEPS, KEYS = 30, 10  # and STEPS batches of KEYS points: 330 points, 60 requests per writer
#: every writer, its imports done, waits here for the others: all eight write at once
#: (without it, a fast writer could finish before a slow one had imported its client)
BARRIER = textwrap.dedent(
    f"""
    def wait_for_the_others():
        import os, sys, time
        from pathlib import Path

        Path(sys.argv[2], sys.argv[1]).touch()
        deadline = time.monotonic() + 300
        while len(os.listdir(sys.argv[2])) < {WRITERS}:
            if time.monotonic() > deadline:
                sys.exit("the other writers never got ready")
            time.sleep(0.005)
    """
)

LOOPSTACK_WRITER = BARRIER + textwrap.dedent(
    f"""
    import sys
    import loopstack as ls

    i = int(sys.argv[1])
    wait_for_the_others()
    with ls.start_run(experiment="load", run_name=f"writer-{{i}}", capture_env=False) as run:
        for step in range({SINGLE}):
            ls.log_metric("single", i * 1e6 + step, step=step)
            run.flush()  # one request per point
        for step in range({STEPS}):
            batch = {{f"b{{k}}": i * 1e6 + step * 100 + k for k in range({KEYS})}}
            ls.log_metrics(batch, step=step)
            run.flush()  # one request per batch
    print(run.run_id)
    """
)

MLFLOW_WRITER = BARRIER + textwrap.dedent(
    f"""
    import sys
    import mlflow
    from mlflow.entities import Metric

    i = int(sys.argv[1])
    wait_for_the_others()
    client = mlflow.MlflowClient()
    exp = mlflow.set_experiment("load")
    with mlflow.start_run(run_name=f"writer-{{i}}") as run:
        for step in range({SINGLE}):
            mlflow.log_metric("single", i * 1e6 + step, step=step)
        for step in range({STEPS}):
            now = 1_700_000_000_000 + step
            client.log_batch(
                run.info.run_id,
                metrics=[
                    Metric(f"b{{k}}", i * 1e6 + step * 100 + k, now, step) for k in range({KEYS})
                ],
            )
    print(run.info.run_id)
    """
)


def _expected(i: int) -> dict[str, dict[int, float]]:
    """Each metric key of writer ``i``: step -> value."""
    out = {"single": {step: i * 1e6 + step for step in range(SINGLE)}}
    for k in range(KEYS):
        out[f"b{k}"] = {step: i * 1e6 + step * 100 + k for step in range(STEPS)}
    return out


@pytest.fixture
def server(db_url: str, ls_home: Path) -> Iterator[str]:
    """One live ``loopstack server`` process over ``db_url``."""
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home), "LOOPSTACK_DB_URL": db_url}
    proc, url = start_server(env)
    yield url
    stop_server(proc)


def _run_writers(script: str, env: dict[str, str], label: str, ready: Path) -> list[str]:
    """Start every writer at once, wait for all; their run ids, in writer order."""
    ready.mkdir()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i), str(ready)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS)
    ]
    while len(list(ready.iterdir())) < WRITERS and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    writing = time.monotonic()
    outs = [p.communicate(timeout=600) for p in procs]
    elapsed = time.monotonic() - writing
    for i, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, f"writer {i} failed:\n{err[-3000:]}"
    points = WRITERS * (SINGLE + STEPS * KEYS)
    print(
        f"\n{label}: {points} points from {WRITERS} processes in {elapsed:.1f}s "
        f"= {points / elapsed:.0f} points/s (after {writing - started:.1f}s of start-up)"
    )
    return [out.strip().splitlines()[-1] for out, _ in outs]


def _writer_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LOOPSTACK_DB_URL"}
    env["LOOPSTACK_TRACKING_URI"] = url
    env["MLFLOW_TRACKING_URI"] = url
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def _assert_every_point_once(url: str, run_ids: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", url)
    from loopstack.tracking import TrackingClient

    client = TrackingClient()
    assert len(set(run_ids)) == WRITERS
    for i, run_id in enumerate(run_ids):
        for key, want in _expected(i).items():
            history = client.get_metric_history(run_id, key)
            got = sorted((m.step, m.value) for m in history)
            assert len(got) == len(want), (
                f"writer {i} {key}: {len(got)} points stored, {len(want)} logged"
            )
            assert got == sorted(want.items()), f"writer {i} {key}: values differ"


def test_eight_loopstack_writers_lose_and_duplicate_nothing(
    server: str, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend = db_url.split(":", 1)[0]
    run_ids = _run_writers(
        LOOPSTACK_WRITER, _writer_env(server), f"loopstack API, {backend}", tmp_path / "ready"
    )
    _assert_every_point_once(server, run_ids, monkeypatch)


@pytest.mark.mlflow
def test_eight_mlflow_writers_lose_and_duplicate_nothing(
    server: str, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow")
    backend = db_url.split(":", 1)[0]
    run_ids = _run_writers(
        MLFLOW_WRITER, _writer_env(server), f"mlflow client, {backend}", tmp_path / "ready"
    )
    _assert_every_point_once(server, run_ids, monkeypatch)
