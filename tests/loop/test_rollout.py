"""Rollouts driven tick by tick over a prediction log written as a replica writes it:
approval through the registry's request, canary steps, promotion, the automatic rollback
on the Nth breach in a row, the overrides and who may use them, and the audit trail."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from loopstack.auth import Role
from loopstack.errors import Conflict, Forbidden, Invalid
from loopstack.loop import CanaryStep, Guardrail, RolloutPlan, Rollouts
from loopstack.registry import SqlRegistry
from loopstack.serving import PredictionLog, SqlDeployments
from loopstack.store.audit_log import open_audit_log
from loopstack.store.events import EventLog
from tests.loop.rollout_models import Models, three_versions


@pytest.fixture
def models(use_db: str) -> Models:
    """The three versions over SQLite and over PostgreSQL."""
    return three_versions()


def _plan(**kw: Any) -> RolloutPlan:
    base: dict[str, Any] = {
        "steps": [CanaryStep(0.05, 0), CanaryStep(0.5, 0), CanaryStep(1.0, 0)],
        "guardrails": [Guardrail("latency_p99_ms", "<", 100)],
        "breaches_to_rollback": 2,
        "interval_s": 0.001,
        "window_s": 60,
    }
    return RolloutPlan(**{**base, **kw})


def _answer(m: Models, version: str, latency_ms: float, n: int = 20, arm: str = "canary") -> None:
    """``n`` predictions of ``version`` logged, as the serving app logs them, and flushed."""
    plog = PredictionLog(EventLog(m.stores), flush_interval_s=60)
    rows = m.frame.head(2)
    for _ in range(n):
        plog.record(
            uuid.uuid4().hex,
            m.endpoint,
            version,
            {"predict": [0, 0]},
            inputs=rows.to_dict("records"),
            arm=arm,
            latency_ms=latency_ms,
        )
    plog.close(30)
    time.sleep(0.01)  # the next tick's window ends after these rows


def _deployment(m: Models) -> Any:
    return SqlDeployments(m.stores).get(m.endpoint)


def _start(m: Models, version: int, plan: RolloutPlan) -> tuple[Rollouts, int]:
    rollouts = Rollouts(m.stores, actor="alice")
    rollout = rollouts.start(m.endpoint, "iris", version, plan)
    assert rollout.status == "awaiting_approval"
    assert rollouts.tick() == []  # nothing moves before the approval
    Rollouts(m.stores, actor="bob").approve(rollout.rollout_id, comment="gates passed")
    return rollouts, rollout.rollout_id


def _production(m: Models) -> int:
    """The version ``models:/iris@production`` resolves to now."""
    return SqlRegistry(m.stores).get_version_by_alias("iris", "production").version


def test_an_approved_good_candidate_goes_through_its_steps_and_is_promoted(models: Models) -> None:
    rollouts, rid = _start(models, 2, _plan())
    # the approval authorises the rollout: production still names the champion
    assert _production(models) == 1

    events = rollouts.tick()
    assert [e.kind for e in events] == ["canary"] and events[0].detail["weight"] == 0.05
    d = _deployment(models)
    # both arms pinned by number: the traffic follows the steps, production the champion
    assert d.policy == "canary"
    assert [(a.role, a.ref, a.version, a.weight) for a in d.arms] == [
        ("primary", "1", 1, 95.0),
        ("canary", "2", 2, 5.0),
    ]
    _answer(models, "2", latency_ms=5)
    events = rollouts.tick()
    assert [e.kind for e in events] == ["evaluated", "canary"]
    assert events[0].detail["values"]["latency_p99_ms"] == pytest.approx(5)
    assert events[1].detail["weight"] == 0.5
    assert [a.weight for a in _deployment(models).arms] == [50.0, 50.0]
    assert _production(models) == 1  # at 50% still not proven
    _answer(models, "2", latency_ms=5)
    events = rollouts.tick()
    assert [e.kind for e in events] == ["evaluated", "promoted"]
    assert events[1].detail["production_alias"] == 2
    assert _production(models) == 2  # moved at the promotion, by the approved request
    request = SqlRegistry(models.stores).get_request(rollouts.get(rid).watch["approval_request"])
    assert (request.state, request.apply_at, request.decided_by) == ("applied", "promotion", "bob")
    moves = SqlRegistry(models.stores).alias_history("iris", "production")
    assert [(m.from_version, m.to_version, m.approval_id) for m in moves][-1:] == [
        (1, 2, request.request_id)
    ]

    done = rollouts.get(rid)
    assert done.status == "promoted" and done.weight == 1.0
    d = _deployment(models)
    assert d.policy == "single"
    assert [(a.ref, a.version, a.weight) for a in d.arms] == [("production", 2, 100.0)]
    assert rollouts.tick() == []  # a finished rollout is left alone
    actions = [e["action"] for e in open_audit_log().events(object_type="rollout")]
    assert actions == [
        "rollout.start",
        "rollout.canary",
        "rollout.canary",
        "rollout.promote",
    ]
    comments = [r.comment for r in SqlDeployments(models.stores).history(models.endpoint)]
    assert comments[-3:] == [
        f"rollout {rid}: canary 5%",
        f"rollout {rid}: canary 50%",
        f"rollout {rid}: promoted",
    ]


def test_a_slow_candidate_is_rolled_back_at_the_tick_of_the_nth_breach(models: Models) -> None:
    plan = _plan(breaches_to_rollback=3, steps=[CanaryStep(0.05, 3600), CanaryStep(1.0, 0)])
    rollouts, rid = _start(models, 3, plan)
    assert [e.kind for e in rollouts.tick()] == ["canary"]
    kinds = []
    for _ in range(3):
        _answer(models, "3", latency_ms=350)
        events = rollouts.tick()
        assert len(events) == 1
        kinds.append(events[0].kind)
        if events[0].kind == "breach":
            assert rollouts.get(rid).status == "canary"  # still watched, not yet rolled back
    assert kinds == ["breach", "breach", "rolled_back"]

    done = rollouts.get(rid)
    assert done.status == "rolled_back"
    assert "latency_p99_ms" in done.reason and "= 350" in done.reason
    assert "threshold 100" in done.reason and "3 times in a row" in done.reason
    d = _deployment(models)
    assert d.policy == "single"
    assert [(a.ref, a.version) for a in d.arms] == [("production", 1)]
    # production never moved: not at the approval, not at the rollback
    reg = SqlRegistry(models.stores)
    assert _production(models) == 1
    assert [m.to_version for m in reg.alias_history("iris", "production")] == [1]
    assert reg.get_request(done.watch["approval_request"]).state == "approved"  # not applied
    audit = open_audit_log().events(object_type="rollout")
    assert [e["action"] for e in audit][-3:] == [
        "rollout.breach",
        "rollout.breach",
        "rollout.rollback",
    ]


def test_a_window_between_breaches_that_holds_resets_the_count(models: Models) -> None:
    rollouts, rid = _start(
        models, 3, _plan(steps=[CanaryStep(0.05, 3600), CanaryStep(1.0, 0)], window_s=0.2)
    )
    rollouts.tick()
    kinds = []
    for latency in (350, 5, 350, 5):
        time.sleep(0.25)  # the window holds only the rows that follow
        _answer(models, "3", latency_ms=latency)
        kinds.extend(e.kind for e in rollouts.tick())
    assert kinds == ["breach", "evaluated", "breach", "evaluated"]
    assert rollouts.get(rid).status == "canary"


def test_overrides_pause_resume_promote_rollback_and_who_may(models: Models) -> None:
    plan = _plan(steps=[CanaryStep(0.05, 3600), CanaryStep(1.0, 0)])
    rollouts, rid = _start(models, 2, plan)
    rollouts.tick()
    viewer = Rollouts(models.stores, actor="vera", role=Role.VIEWER)
    scientist = Rollouts(models.stores, actor="dan", role=Role.DATA_SCIENTIST)
    for who in (viewer, scientist):
        for verb in (who.pause, who.resume, who.force_promote, who.force_rollback):
            with pytest.raises(Forbidden, match="'ml-engineer' or 'admin'"):
                verb(rid)
    assert viewer.get(rid).status == "canary"  # a viewer may read

    engineer = Rollouts(models.stores, actor="erin", role=Role.ML_ENGINEER)
    assert engineer.pause(rid).status == "paused"
    with pytest.raises(Conflict, match="paused already"):
        engineer.pause(rid)
    _answer(models, "2", latency_ms=999)
    assert rollouts.tick() == []  # a paused rollout is neither evaluated nor advanced
    resumed = engineer.resume(rid)
    assert resumed.status == "canary" and resumed.watch["breaches"] == {}
    promoted = engineer.force_promote(rid)
    assert promoted.status == "promoted" and promoted.reason == "forced by erin"
    assert [a.version for a in _deployment(models).arms] == [2]
    with pytest.raises(Conflict, match="promoted already"):
        engineer.force_rollback(rid)
    actions = [(e["action"], e["actor"]) for e in open_audit_log().events(object_type="rollout")]
    assert ("rollout.pause", "erin") in actions and ("rollout.resume", "erin") in actions
    assert actions[-1] == ("rollout.promote", "erin")


def test_a_forced_rollback_puts_the_champion_back(models: Models) -> None:
    rollouts, rid = _start(models, 2, _plan(steps=[CanaryStep(0.25, 3600)]))
    rollouts.tick()
    assert [a.version for a in _deployment(models).arms] == [1, 2]
    back = Rollouts(models.stores, actor="admin", role=Role.ADMIN).force_rollback(rid)
    assert back.status == "rolled_back" and back.reason == "forced by admin"
    assert [(a.ref, a.version) for a in _deployment(models).arms] == [("production", 1)]


def test_a_rejected_request_fails_the_rollout_and_moves_nothing(models: Models) -> None:
    rollouts = Rollouts(models.stores, actor="alice")
    rollout = rollouts.start(models.endpoint, "iris", 2, _plan())
    request_id = rollout.watch["approval_request"]
    SqlRegistry(models.stores, actor="bob").decide(request_id, approve=False, comment="no")
    events = rollouts.tick()
    assert [e.kind for e in events] == ["failed"]
    assert (
        rollouts.get(rollout.rollout_id).reason == f"the approval request {request_id} was rejected"
    )
    assert _deployment(models).policy == "single" and _deployment(models).revision == 1


def test_cancelling_ones_own_rollout_leaves_its_request_to_another(models: Models) -> None:
    rollouts = Rollouts(models.stores, actor="alice")
    rollout = rollouts.start(models.endpoint, "iris", 2, _plan())
    request_id = rollout.watch["approval_request"]
    reason = rollouts.force_rollback(rollout.rollout_id).reason or ""
    assert f"request {request_id} stays pending" in reason
    assert f"loopstack models reject {request_id}" in reason


def test_start_refuses_what_cannot_roll_out(models: Models) -> None:
    rollouts = Rollouts(models.stores, actor="alice")
    with pytest.raises(Invalid, match="another version of the same model"):
        rollouts.start(models.endpoint, "iris", 1, _plan())
    rollouts.start(models.endpoint, "iris", 2, _plan())
    with pytest.raises(Conflict, match="already has rollout"):
        rollouts.start(models.endpoint, "iris", 3, _plan())
    assert [r.version for r in rollouts.list(models.endpoint, active=True)] == ["2"]


def test_a_plan_without_approval_starts_at_once(models: Models) -> None:
    rollouts = Rollouts(models.stores, actor="alice")
    rollout = rollouts.start(models.endpoint, "iris", 2, _plan(require_approval=False))
    assert rollout.status == "canary" and rollout.weight == 0.05
    assert "approval_request" not in rollout.watch


def test_one_ticker_acts_at_a_time(models: Models) -> None:
    from loopstack.store.metadata import acquire_lease, release_lease

    rollouts = Rollouts(models.stores, actor="alice")
    rollouts.start(models.endpoint, "iris", 2, _plan(require_approval=False))
    assert acquire_lease(models.stores.db, "rollouts:0", "another-controller", ttl_s=60)
    assert rollouts.tick() == []  # the other ticker holds the project's rollouts
    release_lease(models.stores.db, "rollouts:0", "another-controller")
    assert [e.kind for e in rollouts.tick()] == ["evaluated", "canary"]  # on to 50%


def test_the_projects_policy_may_approve_a_gated_version_at_once(models: Models) -> None:
    from loopstack.auth import set_policy

    set_policy(models.stores.db, 0, {"auto_approve_when_gates_pass": True}, actor="root")
    rollouts = Rollouts(models.stores, actor="alice")
    ungated = rollouts.start(models.endpoint, "iris", 2, _plan())
    assert ungated.status == "awaiting_approval"  # no gate evidence: a human approves
    cancelled = Rollouts(models.stores, actor="bob").force_rollback(ungated.rollout_id)
    assert cancelled.reason == (
        "cancelled by bob before any traffic moved; its approval request "
        f"{ungated.watch['approval_request']} was rejected"
    )
    gated = rollouts.start(models.endpoint, "iris", 3, _plan(), evidence={"gates_passed": True})
    assert gated.status == "canary" and gated.weight == 0.05
    request = SqlRegistry(models.stores).list_requests(name="iris", state="approved")[-1]
    assert (request.version, request.decided_by) == (3, "policy")
    assert gated.watch["approval_request"] == request.request_id


def test_the_loops_controller_moves_a_rollout_through_its_steps(models: Models) -> None:
    """`loopstack loop run` needs no separate rollout ticker: each controller step ticks
    the rollouts under way, and says what moved."""
    from loopstack.loop import Controller

    _, rid = _start(models, 2, _plan())
    controller = Controller(models.stores, interval_s=0.01)
    kinds = []
    for _ in range(3):
        report = controller.step()
        kinds += [e.kind for e in report.events]
        _answer(models, "2", latency_ms=5)
    assert kinds == ["rollout canary", "rollout canary", "rollout promoted"]
    assert Rollouts(models.stores).get(rid).status == "promoted"
