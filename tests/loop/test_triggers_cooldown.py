"""A threshold trigger's cooldown: after a firing it is silent for the cooldown, while a
firing of it is under way and while a rollout is under way on its endpoint; a restarted
controller keeps it (it is read from the stored firings). Without one, every window over
the threshold fires (tests/loop/test_triggers_monitoring.py)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from loopstack.errors import Invalid
from loopstack.loop import CanaryStep, Controller, RolloutPlan, Trigger, TriggerStore, loop_status
from loopstack.loop._firings import record_firing
from loopstack.loop._rollout_store import RolloutStore
from loopstack.store import open_stores
from tests.loop._launch import FakeObserve, Launcher, pipeline_file

HOUR = 3600.0


@pytest.fixture
def entry(tmp_path: Path) -> str:
    return pipeline_file(tmp_path)


def _boundary() -> float:
    return (time.time() // HOUR + 1) * HOUR


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S UTC")


def _drifted(entry: str, cooldown: str, launch: Launcher) -> tuple[Controller, FakeObserve]:
    """A drift trigger ``fraud-drift`` with ``cooldown``, a controller, and its observe
    (drift_share 0.45 over 0.3)."""
    spec = {"endpoint": "fraud", "above": 0.3, "window": "1h", "cooldown": cooldown}
    TriggerStore(open_stores()).add(Trigger("fraud-drift", "drift", entry, spec=spec))
    seen = FakeObserve({"drift_share": 0.45})
    return Controller(open_stores(), launch=launch, observe=seen, rollouts=False), seen


def _kinds(c: Controller, now: float) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in c.step(now).events]


def test_fires_once_is_silent_for_the_cooldown_says_so_once_per_window_then_fires(
    use_db: str, entry: str
) -> None:
    launch = Launcher()
    c, seen = _drifted(entry, "3h", launch)
    t0 = _boundary()
    fired = t0 + 60
    assert [k for k, _ in _kinds(c, fired)] == ["fired", "launched", "done"]
    reason = "drift_share 0.45 > 0.30 on fraud over 1h"
    held = [("held", f"{reason} but cooling down until {_clock(fired + 3 * HOUR)}")]
    assert _kinds(c, t0 + HOUR + 5) == held  # the next window is still drifted: held
    asked = len(seen.asked)
    for later in (t0 + HOUR + 600, t0 + HOUR + 1800):  # the same window: said once
        assert _kinds(c, later) == []
    assert len(seen.asked) == asked  # ... and not even observed again
    assert _kinds(c, t0 + 2 * HOUR + 5) == held  # a new window: said again, once
    assert _kinds(c, t0 + 3 * HOUR + 30) == held  # 3h after the window, not the firing
    assert len(launch.calls) == 1
    # the cooldown has passed, mid-window: the held window fires now
    assert [k for k, _ in _kinds(c, fired + 3 * HOUR + 1)] == ["fired", "launched", "done"]
    assert len(launch.calls) == 2
    assert [f.reason for f in loop_status(open_stores())] == [reason] * 2
    state = TriggerStore(open_stores()).get("fraud-drift").state
    assert "held_reason" not in state  # firing clears the note of the held evaluation


def test_a_restarted_controller_keeps_the_cooldown(use_db: str, entry: str) -> None:
    seen = FakeObserve({"drift_share": 0.5})
    spec = {"endpoint": "fraud", "above": 0.3, "window": "1h", "cooldown": "2h"}
    TriggerStore(open_stores()).add(Trigger("fraud-drift", "drift", entry, spec=spec))
    t0 = _boundary()
    first = Controller(open_stores(), launch=Launcher(), observe=seen, rollouts=False)
    assert [k for k, _ in _kinds(first, t0 + 60)] == ["fired", "launched", "done"]
    first.release()
    launch = Launcher()
    again = Controller(open_stores(), launch=launch, observe=seen, rollouts=False)
    assert again.holder != first.holder
    assert [k for k, _ in _kinds(again, t0 + HOUR + 5)] == ["held"]
    assert launch.calls == []
    assert [k for k, _ in _kinds(again, t0 + 2 * HOUR + 120)] == ["fired", "launched", "done"]
    assert len(launch.calls) == 1


def test_silent_while_a_rollout_is_under_way_on_its_endpoint(use_db: str, entry: str) -> None:
    launch = Launcher()
    c, seen = _drifted(entry, "30m", launch)
    t0 = _boundary()
    assert [k for k, _ in _kinds(c, t0 + 60)] == ["fired", "launched", "done"]
    # the retraining's pipeline started a rollout of the new version, still under way
    rollouts = RolloutStore(open_stores().db, actor="loop-controller")
    plan = RolloutPlan(steps=[CanaryStep(0.25), CanaryStep(1.0)])
    started = rollouts.create(
        endpoint="fraud", model_name="fraud", version="2", plan=plan, watch={}
    )
    rollouts.create(endpoint="other", model_name="x", version="1", plan=plan, watch={})
    got = _kinds(c, t0 + HOUR + 5)  # the cooldown has passed; the rollout holds it back
    assert got == [
        (
            "held",
            "drift_share 0.45 > 0.30 on fraud over 1h but rollout "
            f"{started.rollout_id} (fraud version 2) is still under way on fraud "
            "(awaiting_approval)",
        )
    ]
    paused = rollouts.change(started, "pause", status="paused", watch={"paused_from": "canary"})
    assert _kinds(c, t0 + 2 * HOUR + 5)[0][0] == "held"  # paused is not over either
    assert len(launch.calls) == 1
    rollouts.change(paused, "rollback", status="rolled_back")
    # over: the same window, held before, fires now (the rollout on 'other' holds nothing)
    assert [k for k, _ in _kinds(c, t0 + 2 * HOUR + 60)] == ["fired", "launched", "done"]
    assert len(launch.calls) == 2


def test_silent_while_a_firing_of_it_is_under_way(use_db: str, entry: str) -> None:
    seen = FakeObserve({"drift_share": 0.45})
    spec = {"endpoint": "fraud", "above": 0.3, "window": "1h", "cooldown": "10m"}
    stored = TriggerStore(open_stores()).add(Trigger("fraud-drift", "drift", entry, spec=spec))
    launch = Launcher()
    c = Controller(open_stores(), launch=launch, observe=seen, rollouts=False)
    t0 = _boundary()
    # a firing of it recorded long ago and not launched yet (pending)
    old = record_firing(
        open_stores().db,
        trigger_id=stored.trigger_id,
        project_id=0,
        dedup_key="manual-r1",
        reason="by hand",
        state=None,
        actor="alice",
        at_ms=int((t0 - 10 * HOUR) * 1000),
    )
    got = _kinds(c, t0 + 60)
    assert got[0] == (
        "held",
        f"drift_share 0.45 > 0.30 on fraud over 1h but firing #{old} is still under way (pending)",
    )
    assert [k for k, _ in got[1:]] == ["launched", "done"]  # the pending one, launched
    assert len(launch.calls) == 1
    assert [k for k, _ in _kinds(c, t0 + 120)] == ["fired", "launched", "done"]  # it is done


def test_a_kpi_trigger_without_an_endpoint_is_held_by_any_rollout(use_db: str, entry: str) -> None:
    from loopstack.loop._cooldown import hold_reason

    spec = {"kpi": "revenue", "below": 100, "cooldown": 600}
    stored = TriggerStore(open_stores()).add(Trigger("money", "kpi", entry, spec=spec))
    db = open_stores().db
    assert hold_reason(db, stored, time.time()) is None
    plan = RolloutPlan(steps=[CanaryStep(1.0)])
    RolloutStore(db).create(endpoint="any", model_name="m", version="3", plan=plan, watch={})
    assert "is still under way on any" in str(hold_reason(db, stored, time.time()))


@pytest.mark.parametrize("bad", ["soon", 0, -5, True, "1x", "", [1]])
def test_bad_cooldowns_are_refused_saying_what_was_expected(entry: str, bad: object) -> None:
    spec = {"endpoint": "fraud", "above": 0.3, "cooldown": bad}
    with pytest.raises(Invalid, match="a drift trigger's 'cooldown' must be positive seconds") as e:
        Trigger("t", "drift", entry, spec=spec)
    assert repr(bad) in e.value.message
    with pytest.raises(Invalid, match="takes schedule; got 'cooldown'"):
        Trigger("t", "cron", entry, spec={"schedule": "* * * * *", "cooldown": "1h"})


def test_good_cooldowns_are_kept_as_given_and_described(entry: str) -> None:
    from loopstack.loop._triggers import cooldown_s, describe

    for kind, spec in (
        ("drift", {"endpoint": "fraud", "above": 0.3}),
        ("performance", {"endpoint": "fraud", "below": 0.8}),
        ("kpi", {"kpi": "revenue", "below": 100}),
    ):
        t = Trigger("t", kind, entry, spec={**spec, "cooldown": "90m"})
        assert t.spec["cooldown"] == "90m" and cooldown_s(t) == 5400
        assert describe(t).endswith(", cooldown 90m")
        assert cooldown_s(Trigger("t", kind, entry, spec=spec)) is None
