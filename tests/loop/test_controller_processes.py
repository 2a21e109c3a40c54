"""Controllers as real processes: one SIGKILLed at each phase of a firing is finished
by the next with exactly one launch, and two racing on one database launch each
firing once. Launches are counted through a file the test's launcher appends to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import loopstack as ls
from loopstack.loop import Trigger, TriggerStore, loop_status
from loopstack.store import open_stores
from tests.loop._launch import pipeline_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # controller processes, each importing loopstack


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("LOOPSTACK_") or k == "PATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["LOOP_LAUNCHES"] = str(tmp_path / "launches.txt")
    env["LOOP_RESUMES"] = str(tmp_path / "resumes.txt")
    env.update(extra)
    return env


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "loop" / "_controller_proc.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("phase", ["recorded", "claimed", "in-launch", "launched"])
def test_a_controller_sigkilled_at_each_phase_is_finished_with_exactly_one_launch(
    use_db: str, tmp_path: Path, phase: str
) -> None:
    entry = pipeline_file(tmp_path)
    ls.register_dataset("transactions", pd.DataFrame({"a": [0]}))
    TriggerStore(open_stores()).add(
        Trigger("fresh", "dataset", entry, spec={"dataset": "transactions"})
    )
    ls.register_dataset("transactions", pd.DataFrame({"a": [0, 1]}))
    marker = tmp_path / "marker"
    env = _env(tmp_path, LOOP_TTL="1", LOOP_ITERATIONS="1000")
    proc = _start({**env, "LOOP_PAUSE_AT": phase, "LOOP_MARKER": str(marker)})
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the controller exited early:\n{proc.stdout.read().decode()}")
        assert time.monotonic() < deadline, "the controller never reached the phase"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    before = _lines(tmp_path / "launches.txt")
    assert len(before) == (1 if phase in ("in-launch", "launched") else 0)
    # the next controller: the dead one's lease (1 s) and heartbeat run out, then it acts
    nxt = _start({**env, "LOOP_ITERATIONS": "60"})
    out, _ = nxt.communicate(timeout=120)
    assert nxt.returncode == 0, out.decode()
    (view,) = loop_status(open_stores())
    assert view.status == "done", view
    launches = _lines(tmp_path / "launches.txt")
    resumes = _lines(tmp_path / "resumes.txt")
    assert len(launches) == 1, launches
    assert len(resumes) == (1 if phase in ("in-launch", "launched") else 0), resumes
    if resumes:  # the run the dead controller started is the one resumed
        assert resumes[0].split()[1] == launches[0].split()[1] == view.pipeline_run_uuid


def test_two_controller_processes_on_one_database_launch_each_firing_once(
    use_db: str, tmp_path: Path
) -> None:
    entry = pipeline_file(tmp_path)
    store = TriggerStore(open_stores())
    store.add(Trigger("by-hand", "manual", entry))
    ls.register_dataset("transactions", pd.DataFrame({"a": [0]}))
    store.add(Trigger("fresh", "dataset", entry, spec={"dataset": "transactions"}))
    for i in range(4):
        store.fire_manual("by-hand", request_id=f"r{i}")
        ls.register_dataset("transactions", pd.DataFrame({"a": list(range(i + 2))}))
    env = _env(tmp_path, LOOP_TTL="0.5", LOOP_ITERATIONS="40")
    procs = [_start({**env, "LOOP_HOLDER": name}) for name in ("p1", "p2")]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out.decode()
    shown = loop_status(open_stores(), limit=100)
    assert len(shown) == 8 and all(f.status == "done" for f in shown), shown
    launches = _lines(tmp_path / "launches.txt")
    assert len(launches) == 8, launches
    assert sorted(line.split()[1] for line in launches) == sorted(
        str(f.pipeline_run_uuid) for f in shown
    )
