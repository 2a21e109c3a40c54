"""``production`` moves when a rollout promotes, not when its request is approved: during
the shadow and canary phases the alias names the champion, a rollback never moved it, a
re-rollout of a rolled-back version reuses its approval, a pending direct request is
adopted; a direct request still moves at its approval; a rollout started before the rule
(its request moved the alias at approval) still moves it back when it rolls back."""

from __future__ import annotations

import json
from typing import cast

import pytest
from sqlalchemy import Table, update
from typer.testing import CliRunner

from loopstack.auth import Role
from loopstack.cli import app
from loopstack.loop import CanaryStep, Rollouts
from loopstack.registry import SqlRegistry
from loopstack.store.metadata.schema import ApprovalRequest as ApprovalRow
from tests.loop.rollout_models import Models, three_versions
from tests.loop.test_rollout import _answer, _deployment, _plan, _start


@pytest.fixture
def models(use_db: str) -> Models:
    """The three versions over SQLite and over PostgreSQL."""
    return three_versions()


def _production(m: Models) -> int:
    """The version ``models:/iris@production`` resolves to now."""
    return SqlRegistry(m.stores).get_version_by_alias("iris", "production").version


def _moves(m: Models) -> list[tuple[int | None, int | None]]:
    return [(a.from_version, a.to_version) for a in SqlRegistry(m.stores).alias_history("iris")]


def test_shadow_and_canary_leave_production_on_the_champion(models: Models) -> None:
    plan = _plan(shadow_s=0.001, steps=[CanaryStep(0.25, 0), CanaryStep(1.0, 0)])
    rollouts, rid = _start(models, 2, plan)
    seen = []
    for _ in range(6):
        kinds = [e.kind for e in rollouts.tick()]
        seen.append((rollouts.get(rid).status, _production(models)))
        if "promoted" in kinds:
            break
        _answer(models, "2", latency_ms=5, arm=rollouts.get(rid).status)
    assert seen[0] == ("shadow", 1) and ("canary", 1) in seen
    assert seen[-1] == ("promoted", 2)
    assert all(version == 1 for status, version in seen if status != "promoted")
    assert _moves(models) == [(None, 1), (1, 2)]  # one move, at the promotion


def test_a_forced_rollback_never_moved_production(models: Models) -> None:
    rollouts, rid = _start(models, 2, _plan(steps=[CanaryStep(0.25, 3600)]))
    rollouts.tick()
    back = Rollouts(models.stores, actor="admin", role=Role.ADMIN).force_rollback(rid)
    assert back.status == "rolled_back"
    assert _production(models) == 1 and _moves(models) == [(None, 1)]
    model_trail = SqlRegistry(models.stores).alias_history("iris", "production")
    assert [m.approval_id for m in model_trail] == [None]  # no approval moved it


def test_a_rolled_back_version_rolled_out_again_moves_production_at_its_promotion(
    models: Models,
) -> None:
    rollouts, first = _start(models, 2, _plan(steps=[CanaryStep(0.25, 3600)]))
    rollouts.tick()
    request = rollouts.get(first).watch["approval_request"]
    rollouts.force_rollback(first)
    assert _production(models) == 1
    again = rollouts.start(models.endpoint, "iris", 2, _plan())
    # v2 is approved already: its approval, never applied, goes with the new rollout
    assert again.status == "canary" and again.watch["approval_request"] == request
    promoted = rollouts.force_promote(again.rollout_id)
    assert promoted.status == "promoted" and _production(models) == 2
    assert SqlRegistry(models.stores).get_request(request).state == "applied"
    assert [(a.ref, a.version) for a in _deployment(models).arms] == [("production", 2)]


def test_a_rollout_adopts_a_pending_direct_request(models: Models) -> None:
    reg = SqlRegistry(models.stores, actor="alice")
    direct = reg.request_promotion("iris", 2, evidence={"note": "by hand"})
    assert direct.apply_at == "approval"
    rollouts = Rollouts(models.stores, actor="alice")
    rollout = rollouts.start(models.endpoint, "iris", 2, _plan())
    assert rollout.watch["approval_request"] == direct.request_id
    assert reg.get_request(direct.request_id).apply_at == "promotion"
    # approved through the registry, as `loopstack models approve` does: nothing moves
    SqlRegistry(models.stores, actor="bob").approve(direct.request_id)
    assert _production(models) == 1
    assert [e.kind for e in rollouts.tick()] == ["canary"]
    assert _production(models) == 1
    rollouts.force_promote(rollout.rollout_id)
    assert _production(models) == 2


def test_a_direct_request_still_moves_production_at_its_approval(models: Models) -> None:
    """`loopstack models promote` / `approve` outside a rollout: the registry's rule."""

    def cli(*args: str, user: str) -> str:
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "LOOPSTACK_USER": user})
        assert result.exit_code == 0, result.output
        return str(result.stdout)

    cli("models", "promote", "iris", "2", user="alice")
    (request,) = SqlRegistry(models.stores).list_requests(name="iris", state="pending")
    out = cli("models", "approve", request.request_id, user="bob")
    assert "iris@production now points at version 2" in out
    assert _production(models) == 2
    listed = json.loads(cli("models", "requests", "--json", user="bob"))
    assert [(r["state"], r["moves_at"]) for r in listed] == [("approved", "approval")]


def test_a_rollout_approved_by_the_cli_says_when_production_moves(models: Models) -> None:
    rollout = Rollouts(models.stores, actor="alice").start(models.endpoint, "iris", 2, _plan())
    result = CliRunner().invoke(
        app,
        ["models", "approve", rollout.watch["approval_request"]],
        env={"COLUMNS": "200", "LOOPSTACK_USER": "bob"},
    )
    assert result.exit_code == 0, result.output
    assert "moves to version 2 when the rollout promotes" in result.stdout
    assert _production(models) == 1


def test_a_rollout_from_before_the_rule_moves_production_back(models: Models) -> None:
    """A rollout whose request moved ``production`` at approval (opened before the rule:
    its evidence carries no mark) is rolled back with the alias back on the champion."""
    rollouts = Rollouts(models.stores, actor="alice")
    rollout = rollouts.start(models.endpoint, "iris", 3, _plan(breaches_to_rollback=1))
    request_id = rollout.watch["approval_request"]
    table = cast(Table, ApprovalRow.__table__)
    with models.stores.db.engine.begin() as conn:  # as a request of the old rule was kept
        conn.execute(update(table).where(table.c.request_id == request_id).values(evidence="{}"))
    assert "production_before" in rollout.watch
    SqlRegistry(models.stores, actor="bob").approve(request_id)
    assert _production(models) == 3  # the old rule: moved at approval
    assert [e.kind for e in rollouts.tick()] == ["canary"]
    _answer(models, "3", latency_ms=350)
    assert [e.kind for e in rollouts.tick()] == ["rolled_back"]
    assert _production(models) == 1
    assert _moves(models) == [(None, 1), (1, 3), (3, 1)]
