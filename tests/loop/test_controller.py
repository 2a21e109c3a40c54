"""The controller: one active per database by lease, each firing launched exactly once
even when two controllers act at once, and what a firing led to (done, failed, stopped
by a gate). A controller that dies mid-firing is finished by the next, without a
second launch."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import GateFailed, Invalid, StepFailed
from loopstack.loop import Controller, Trigger, TriggerStore, loop_status
from loopstack.store import open_stores
from loopstack.store.metadata import lease_holder
from tests.loop._launch import Launcher, pipeline_file


@pytest.fixture
def entry(tmp_path: Path) -> str:
    return pipeline_file(tmp_path)


def test_one_controller_acts_the_other_stands_by_until_the_lease_is_free(
    use_db: str, entry: str
) -> None:
    store = TriggerStore(open_stores())
    store.add(Trigger("by-hand", "manual", entry))
    store.fire_manual("by-hand")
    first, second = Launcher(), Launcher()
    a = Controller(open_stores(), holder="a", launch=first)
    b = Controller(open_stores(), holder="b", launch=second)
    assert a.step().active and not b.step().active
    assert lease_holder(open_stores().db, "loop-controller").holder == "a"
    store.fire_manual("by-hand")
    assert not b.step().active and b.step().events == []
    a.release()
    assert b.step().active
    assert (len(first.calls), len(second.calls)) == (1, 1)


def test_two_controllers_in_threads_launch_each_firing_exactly_once(
    use_db: str, entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with the election defeated (both believe they hold the lease), the unique
    firing index and the conditional claim let each event through once."""
    from loopstack.loop import _controller

    monkeypatch.setattr(_controller, "acquire_lease", lambda *a, **k: object())
    ls.register_dataset("transactions", pd.DataFrame({"a": [0]}))
    store = TriggerStore(open_stores())
    store.add(Trigger("fresh", "dataset", entry, spec={"dataset": "transactions"}))
    store.add(Trigger("by-hand", "manual", entry))
    launch = Launcher()
    start = threading.Barrier(3)
    done = threading.Event()
    errors: list[BaseException] = []

    def controller(name: str) -> None:
        c = Controller(open_stores(), holder=name, launch=launch)
        start.wait()
        try:
            while not done.is_set():
                c.step()
            c.step()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=controller, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    start.wait()
    for i in range(1, 6):
        ls.register_dataset("transactions", pd.DataFrame({"a": list(range(i + 1))}))
        store.fire_manual("by-hand", request_id=f"r{i}")
        time.sleep(0.02)
    done.set()
    for t in threads:
        t.join(60)
    assert errors == []
    shown = loop_status(open_stores(), limit=100)
    assert len(shown) == 10 and all(f.status == "done" for f in shown), shown
    assert len(launch.calls) == 10
    assert sorted(f.dedup_key for f in shown if f.trigger == "fresh") == [
        f"v{i}" for i in range(2, 7)
    ]


def test_what_a_firing_led_to_done_failed_or_stopped_by_a_gate(use_db: str, entry: str) -> None:
    store = TriggerStore(open_stores())
    store.add(Trigger("t", "manual", entry, params={"rows": 5}))
    cases = [
        (Launcher(), "done"),
        (Launcher(status="FAILED"), "failed"),
        (Launcher(fail=StepFailed("step 'train' failed: ValueError: nan loss")), "failed"),
        (Launcher(fail=GateFailed("accuracy 0.81 does not beat the champion's 0.83")), "stopped"),
    ]
    for launch, _ in cases:
        store.fire_manual("t")
        Controller(open_stores(), holder="one", launch=launch).step()
    shown = list(reversed(loop_status(open_stores())))
    assert [f.status for f in shown] == [want for _, want in cases]
    assert shown[0].pipeline_run_uuid and shown[0].outcome["pipeline_status"] == "FINISHED"
    assert shown[2].outcome["error"] == "step 'train' failed: ValueError: nan loss"
    assert shown[3].outcome["gate"] == "accuracy 0.81 does not beat the champion's 0.83"
    assert all(launch.calls == [(entry, {"rows": 5})] for launch, _ in cases)


def test_a_gate_failure_wrapped_by_a_step_still_stops_the_loop(use_db: str, entry: str) -> None:
    def launch(entrypoint: str, params: dict[str, Any]) -> Any:
        try:
            raise GateFailed("fairness: recall gap 0.12 > 0.05 across 'region'")
        except GateFailed as exc:
            raise StepFailed("step 'gate' failed") from exc

    store = TriggerStore(open_stores())
    store.add(Trigger("t", "manual", entry))
    store.fire_manual("t")
    Controller(open_stores(), launch=launch).step()
    (view,) = loop_status(open_stores())
    assert view.status == "stopped" and "recall gap 0.12" in view.outcome["gate"]


def _step_until_settled(controller: Controller) -> list[Any]:
    """Step until no firing is pending or running: the dead controller's lease and its
    firing's heartbeat run out first."""
    deadline = time.monotonic() + 30
    while True:
        controller.step()
        shown = loop_status(open_stores())
        if all(f.status not in ("pending", "running") for f in shown):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)


class Crash(BaseException):
    """A controller dying at a phase (not an Exception: nothing catches it)."""


@pytest.mark.parametrize("phase", ["recorded", "claimed", "launched"])
def test_a_controller_dying_at_each_phase_is_finished_by_the_next_without_a_second_launch(
    use_db: str, entry: str, phase: str
) -> None:
    ls.register_dataset("transactions", pd.DataFrame({"a": [0]}))
    TriggerStore(open_stores()).add(
        Trigger("fresh", "dataset", entry, spec={"dataset": "transactions"})
    )
    ls.register_dataset("transactions", pd.DataFrame({"a": [0, 1]}))
    launch = Launcher()
    resumed: list[str] = []

    def die(at: str, firing_id: int) -> None:
        if at == phase:
            raise Crash(at)

    dying = Controller(open_stores(), holder="dying", launch=launch, lease_ttl_s=0.5, hook=die)
    with pytest.raises(Crash):
        dying.step()
    assert loop_status(open_stores())[0].status == ("pending" if phase == "recorded" else "running")

    def resume(run_uuid: str) -> Any:
        resumed.append(run_uuid)
        return SimpleNamespace(run_uuid=run_uuid, status="FINISHED")

    nxt = Controller(open_stores(), holder="next", launch=launch, resume=resume)
    (view,) = _step_until_settled(nxt)
    assert view.status == "done" and len(launch.calls) == 1, view
    assert len(resumed) == (1 if phase == "launched" else 0)
    if phase != "recorded":
        assert view.outcome["recovered_from"] == "dying" and view.outcome["holder"] == "next"


@pytest.mark.parametrize("left", ["RUNNING", "FAILED", "FINISHED"])
def test_a_run_started_but_not_recorded_is_found_and_resumed_not_launched_again(
    use_db: str, entry: str, left: str
) -> None:
    from loopstack.store.metadata.schema_loop import PipelineRunRow

    run_uuid = uuid.uuid4().hex

    def start_then_die(entrypoint: str, params: dict[str, Any]) -> Any:
        row = {
            "run_uuid": run_uuid,
            "project_id": 0,
            "pipeline": "training",
            "entrypoint": entrypoint,
            "status": left,
            "params": "{}",
            "graph": "{}",
            "executor": "local",
            "created_by": "loop",
            "created_at": int(time.time() * 1000) + 1,
        }
        open_stores().db.write_unaudited(
            lambda conn: conn.execute(PipelineRunRow.__table__.insert().values(**row))
        )
        raise Crash("killed mid-pipeline")

    store = TriggerStore(open_stores())
    store.add(Trigger("t", "manual", entry))
    store.fire_manual("t")
    dying = Controller(open_stores(), holder="dying", launch=start_then_die, lease_ttl_s=0.5)
    with pytest.raises(Crash):
        dying.step()
    launch, resumed = Launcher(), []
    nxt = Controller(
        open_stores(),
        launch=launch,
        resume=lambda u: resumed.append(u) or SimpleNamespace(run_uuid=u, status="FINISHED"),
    )
    (view,) = _step_until_settled(nxt)
    assert resumed == ([] if left == "FINISHED" else [run_uuid]) and launch.calls == []
    assert view.status == "done" and view.pipeline_run_uuid == run_uuid


def test_the_lease_is_kept_while_a_long_pipeline_runs(use_db: str, entry: str) -> None:
    store = TriggerStore(open_stores())
    store.add(Trigger("t", "manual", entry))
    store.fire_manual("t")
    other = Controller(open_stores(), holder="other", launch=Launcher())
    seen: list[bool] = []

    def slow(entrypoint: str, params: dict[str, Any]) -> Any:
        time.sleep(1.5)  # five lease lengths
        seen.append(other.step().active)
        return SimpleNamespace(run_uuid="r1", status="FINISHED")

    Controller(open_stores(), holder="busy", launch=slow, lease_ttl_s=0.3).step()
    assert seen == [False]  # the other never got in while the pipeline ran


def test_bad_settings_are_refused(use_db: str) -> None:
    with pytest.raises(Invalid, match="'interval_s' parameter must be a positive number"):
        Controller(open_stores(), interval_s=0)
    with pytest.raises(Invalid, match="'iterations' parameter must be a positive integer"):
        Controller(open_stores()).run(iterations=0)
    with pytest.raises(Invalid, match="'limit' parameter must be an integer >= 1"):
        loop_status(open_stores(), limit=0)


def test_run_steps_and_gives_the_lease_up(use_db: str, entry: str) -> None:
    store = TriggerStore(open_stores())
    store.add(Trigger("t", "manual", entry))
    store.fire_manual("t")
    launch = Launcher()
    reports: list[Any] = []
    Controller(open_stores(), holder="x", launch=launch, interval_s=0.01).run(
        iterations=3, on_step=reports.append
    )
    assert len(reports) == 3 and len(launch.calls) == 1
    assert lease_holder(open_stores().db, "loop-controller") is None


def test_one_controller_serves_every_project_each_pipeline_in_its_own(
    use_db: str, entry: str
) -> None:
    from loopstack.auth import create_project
    from loopstack.config import chosen_project

    stores = open_stores()
    fraud = create_project(stores.db, "fraud", actor="admin")
    TriggerStore(stores).add(Trigger("t", "manual", entry))
    TriggerStore(stores, project_id=fraud.project_id).add(Trigger("t", "manual", entry))
    TriggerStore(stores, project_id=fraud.project_id).fire_manual("t", "fraud's")
    TriggerStore(stores).fire_manual("t", "default's")
    seen: list[str | None] = []

    def launch(entrypoint: str, params: dict[str, Any]) -> Any:
        seen.append(chosen_project())
        return SimpleNamespace(run_uuid=uuid.uuid4().hex, status="FINISHED")

    Controller(stores, launch=launch).step()
    assert seen == ["fraud", "default"] and chosen_project() is None
    assert [f.reason for f in loop_status(stores, project_id=fraud.project_id)] == ["fraud's"]
    assert [f.reason for f in loop_status(stores)] == ["default's"]
