"""``ls.checkpoint``: a training loop killed halfway resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import loopstack as ls
from loopstack.errors import Invalid

SCRIPT = """
import json, os, signal, sys
import loopstack as ls

@ls.step
def fit(epochs: int = 6, lr: float = 0.5) -> dict:
    ran = []
    with ls.checkpoint("state") as ckpt:
        state = ckpt.load(default={"epoch": 0, "w": 0.0})
        for epoch in range(state["epoch"], epochs):
            state = {"epoch": epoch + 1, "w": state["w"] * (1 - lr) + epoch}
            ran.append(epoch)
            ckpt.save(state, progress={"epoch": epoch + 1})
            with open(os.environ["RAN_LOG"], "a") as fh:
                fh.write(json.dumps(epoch) + "\\n")
            if os.environ.get("KILL_AT") == str(epoch + 1):
                os.kill(os.getpid(), signal.SIGKILL)
    return state

@ls.pipeline
def training(epochs: int = 6):
    fit(epochs=epochs)

if __name__ == "__main__":
    run = training.run()
    print(json.dumps({"run": run.run_uuid, "out": run.output("fit")}))
"""


def _run(script: Path, home: Path, ran: Path, db_url: str, kill_at: int | None = None):
    env = {k: v for k, v in os.environ.items() if k != "KILL_AT"}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env.update(PYTHONPATH=src, LOOPSTACK_HOME=str(home), LOOPSTACK_DB_URL=db_url, RAN_LOG=str(ran))
    if kill_at is not None:
        env["KILL_AT"] = str(kill_at)
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )


def _ran(log: Path) -> list[int]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_killed_training_step_resumes_from_its_last_checkpoint(
    use_db: str, ls_home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "train_flow.py"
    script.write_text(SCRIPT)
    killed_log = tmp_path / "killed.log"
    killed = _run(script, ls_home, killed_log, use_db, kill_at=3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _ran(killed_log) == [0, 1, 2]

    rerun = _run(script, ls_home, killed_log, use_db)
    assert rerun.returncode == 0, rerun.stderr
    assert _ran(killed_log) == [0, 1, 2, 3, 4, 5]  # the rerun started at epoch 3
    resumed = json.loads(rerun.stdout.strip().splitlines()[-1])["out"]

    # an uninterrupted run elsewhere (its own database and artifacts) ends the same
    other = tmp_path / "other-home"
    straight_log = tmp_path / "straight.log"
    straight = _run(script, other, straight_log, f"sqlite:///{other / 'loopstack.db'}")
    assert straight.returncode == 0, straight.stderr
    assert _ran(straight_log) == [0, 1, 2, 3, 4, 5]
    assert json.loads(straight.stdout.strip().splitlines()[-1])["out"] == resumed


def test_a_run_killed_mid_step_can_be_resumed_by_its_id(
    use_db: str, ls_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "train_flow.py"
    script.write_text(SCRIPT)
    log = tmp_path / "ran.log"
    assert _run(script, ls_home, log, use_db, kill_at=2).returncode == -signal.SIGKILL
    (run,) = ls.pipelines.list_runs("training")
    assert run.status == "RUNNING" and run.steps["fit"].status == "RUNNING"
    assert ls.pipelines.get_run(run.run_uuid).steps["fit"].status == "RUNNING"
    monkeypatch.setenv("RAN_LOG", str(log))
    resumed = ls.pipelines.resume(run.run_uuid)
    assert resumed.status == "FINISHED" and resumed.attempt == 2
    assert _ran(log) == [0, 1, 2, 3, 4, 5]
    assert resumed.output("fit")["epoch"] == 6


def test_outside_a_step_a_checkpoint_needs_a_key(use_db: str) -> None:
    with pytest.raises(Invalid, match="needs an explicit key="):
        ls.checkpoint("state")
    with ls.checkpoint("state", key="notebook-1") as ckpt:
        assert ckpt.load(default="nothing") == "nothing" and ckpt.progress == {}
        ckpt.save({"w": [1.0, 2.0]}, progress={"epoch": 1})
    again = ls.checkpoint("state", key="notebook-1")
    assert again.load() == {"w": [1.0, 2.0]} and again.progress == {"epoch": 1}
    again.save({"w": [3.0]}, progress={"epoch": 2})
    assert ls.checkpoint("state", key="notebook-1").load() == {"w": [3.0]}
    assert ls.checkpoint("other", key="notebook-1").load() is None
    with pytest.raises(Invalid, match="progress"):
        again.save(1, progress={"when": object()})
