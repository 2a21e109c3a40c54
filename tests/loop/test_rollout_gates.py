"""Gates before rollouts: a version rolls out only on recorded gates that all passed,
unless an admin forces it, with a reason, audited; the rollout keeps the evaluation it
started on."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.auth import Role
from loopstack.errors import Forbidden, GateFailed, Invalid
from loopstack.loop import CanaryStep, RolloutPlan, Rollouts, gate_report
from loopstack.store.audit_log import open_audit_log
from tests.loop.rollout_models import Models, log_versions, record_real_gates


@pytest.fixture
def models(use_db: str) -> Models:
    """v1 the champion, v2 gated (passed), v3 logged with no gates recorded yet."""
    m = log_versions()
    with ls.start_run(experiment="rollouts") as run:
        model = LogisticRegression(C=0.2, max_iter=300).fit(m.frame, m.y)
        run.log_model(model, name="iris", artifact_path="m3", sample_input=m.frame.head(3))
    return m


PLAN = RolloutPlan(steps=[CanaryStep(0.5, 60), CanaryStep(1.0, 0)])


def test_a_version_without_gates_is_refused_and_nothing_starts(models: Models) -> None:
    rollouts = Rollouts(models.stores, actor="alice")
    with pytest.raises(GateFailed, match="version 3 has no gate results"):
        rollouts.start(models.endpoint, "iris", 3, PLAN)
    assert rollouts.list() == []


def test_a_failed_gate_is_named_and_passing_gates_let_it_start(models: Models) -> None:
    rollouts = Rollouts(models.stores, actor="alice")
    failed = record_real_gates(models, 3, min_accuracy=0.999)
    assert not failed.passed
    with pytest.raises(GateFailed, match=r"primary.*accuracy") as info:
        rollouts.start(models.endpoint, "iris", 3, PLAN)
    assert failed.failed[0].gate in str(info.value)
    assert rollouts.list() == []
    passed = record_real_gates(models, 3)  # evaluated again: the latest evaluation counts
    rollout = rollouts.start(models.endpoint, "iris", 3, PLAN)
    assert rollout.status == "awaiting_approval"
    assert rollout.watch["gates"]["evaluation_id"] == passed.evaluation_id
    assert rollout.watch["gates"]["passed"] is True
    assert rollout.watch["gates"]["gates"] == [r.gate for r in passed.results]
    start = [e for e in open_audit_log().events(object_type="rollout")][-1]
    assert start["action"] == "rollout.start"


def test_only_an_admin_forces_past_the_gates_with_a_reason_audited(models: Models) -> None:
    engineer = Rollouts(models.stores, actor="eve", role=Role.ML_ENGINEER)
    with pytest.raises(Forbidden, match="needs the 'admin' role"):
        engineer.start(models.endpoint, "iris", 3, PLAN, force=True, reason="hotfix")
    admin = Rollouts(models.stores, actor="root", role=Role.ADMIN)
    with pytest.raises(Invalid, match="needs a reason"):
        admin.start(models.endpoint, "iris", 3, PLAN, force=True)
    assert admin.list() == []
    rollout = admin.start(models.endpoint, "iris", 3, PLAN, force=True, reason="hotfix")
    gates = rollout.watch["gates"]
    assert gates["forced_by"] == "root" and gates["force_reason"] == "hotfix"
    assert gates["passed"] is False and "no gate results" in gates["failed"]
    assert gate_report("iris", 3, stores=models.stores) is None  # nothing was recorded
    events = open_audit_log().events(object_type="rollout", object_id=str(rollout.rollout_id))
    assert [(e["action"], e["actor"]) for e in events] == [("rollout.start", "root")]
