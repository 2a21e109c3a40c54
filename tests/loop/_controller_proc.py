"""A controller process for the kill and race tests (run as a script).

Environment: LOOP_LAUNCHES (a file each launch appends a line to), LOOP_RESUMES (same,
for resumes), LOOP_PAUSE_AT (a phase: recorded, claimed, in-launch, launched) with
LOOP_MARKER (written when it gets there, then it sleeps until killed), LOOP_ITERATIONS,
LOOP_TTL (lease seconds), LOOP_HOLDER. Stores come from LOOPSTACK_* as usual.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loopstack.loop import Controller
from loopstack.store import open_stores

PAUSE_AT = os.environ.get("LOOP_PAUSE_AT", "")


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:  # one short write: whole lines even from two processes
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def pause(phase: str) -> None:
    if phase == PAUSE_AT:
        Path(os.environ["LOOP_MARKER"]).write_text(phase)
        time.sleep(3600)  # until SIGKILL


def launch(entrypoint: str, params: dict[str, Any]) -> Any:
    run_uuid = uuid.uuid4().hex
    _append(os.environ["LOOP_LAUNCHES"], f"{os.getpid()} {run_uuid} {entrypoint}")
    if PAUSE_AT == "in-launch":  # the pipeline has started (and said so), then dies
        from loopstack.store.metadata.schema_loop import PipelineRunRow

        row = {
            "run_uuid": run_uuid,
            "project_id": 0,
            "pipeline": "training",
            "entrypoint": entrypoint,
            "status": "RUNNING",
            "params": "{}",
            "graph": "{}",
            "executor": "local",
            "created_by": "loop",
            "created_at": int(time.time() * 1000) + 1,
        }
        open_stores().db.write_unaudited(
            lambda conn: conn.execute(PipelineRunRow.__table__.insert().values(**row))
        )
    pause("in-launch")
    return SimpleNamespace(run_uuid=run_uuid, status="FINISHED")


def resume(run_uuid: str) -> Any:
    _append(os.environ["LOOP_RESUMES"], f"{os.getpid()} {run_uuid}")
    return SimpleNamespace(run_uuid=run_uuid, status="FINISHED")


def main() -> None:
    ttl = float(os.environ.get("LOOP_TTL", "1"))
    Controller(
        open_stores(),
        holder=os.environ.get("LOOP_HOLDER"),
        interval_s=0.05,
        lease_ttl_s=ttl,
        launch=launch,
        resume=resume,
        hook=lambda phase, firing_id: pause(phase),
    ).run(iterations=int(os.environ.get("LOOP_ITERATIONS", "20")))


if __name__ == "__main__":
    sys.exit(main())
