"""When an approved request moves its alias: a direct request at its approval, a
rollout's (``apply_at="promotion"``) only when ``apply_request`` applies it."""

from __future__ import annotations

import pytest

import loopstack as ls
from loopstack.registry import SqlRegistry, registry
from loopstack.store import audit, open_stores
from tests.registry.test_registry_store import SIG_A, SIG_AB, _version


@pytest.fixture
def reg(use_db: str) -> SqlRegistry:
    """alice's registry with churn v1 (production) and v2, v3 (same inputs), v4 (fewer)."""
    alice = registry(actor="alice")
    for sig in (SIG_AB, SIG_AB, SIG_AB, SIG_A):
        _version(alice, signature=sig)
    alice.set_alias("churn", "production", 1, override=True)
    return alice


def _production(reg: SqlRegistry) -> int:
    return reg.get_version_by_alias("churn", "production").version


def test_a_direct_request_still_moves_production_at_its_approval(reg: SqlRegistry) -> None:
    request = reg.request_promotion("churn", 2)
    assert request.apply_at == "approval"
    decided = registry(actor="bob").approve(request.request_id, comment="ok")
    assert (decided.state, decided.apply_at) == ("approved", "approval")
    assert _production(reg) == 2
    with pytest.raises(ls.Conflict, match="moves its alias at its approval"):
        reg.apply_request(request.request_id)
    assert _production(reg) == 2


def test_a_rollouts_request_moves_production_only_when_applied(reg: SqlRegistry) -> None:
    request = reg.request_promotion(
        "churn", 2, evidence={"note": "canary it"}, apply_at="promotion"
    )
    assert request.apply_at == "promotion" and request.evidence["note"] == "canary it"
    assert "_apply" not in request.evidence  # the registry's mark is not evidence
    with pytest.raises(ls.Conflict, match="is pending: only an approved request"):
        reg.apply_request(request.request_id)
    decided = registry(actor="bob").approve(request.request_id)
    assert (decided.state, decided.decided_by) == ("approved", "bob")
    assert reg.get_model_version("churn", 2).approval_state == "approved"
    assert _production(reg) == 1  # the approval authorised; nothing moved

    applied = reg.apply_request(request.request_id, reason="rollout 7 promoted")
    assert applied.state == "applied" and _production(reg) == 2
    move = reg.alias_history("churn", "production")[-1]
    assert (move.from_version, move.to_version, move.approval_id, move.reason) == (
        1,
        2,
        request.request_id,
        "rollout 7 promoted",
    )
    again = reg.apply_request(request.request_id)  # nothing moves twice
    assert again.state == "applied" and len(reg.alias_history("churn", "production")) == 2
    assert [r.request_id for r in reg.list_requests(state="applied")] == [request.request_id]
    trail = [e["action"] for e in audit.events(open_stores().db, object_type="model")]
    assert trail.count("model.apply_request") == 1


def test_the_signature_check_is_made_at_the_approval_and_force_is_kept(
    reg: SqlRegistry,
) -> None:
    bob = registry(actor="bob")
    request = reg.request_promotion("churn", 4, apply_at="promotion")
    with pytest.raises(ls.Conflict, match="is refused"):
        bob.decide(request.request_id, approve=True)
    assert reg.get_request(request.request_id).state == "pending"
    bob.decide(request.request_id, approve=True, force=True)
    assert _production(reg) == 1
    assert reg.apply_request(request.request_id).state == "applied"
    assert _production(reg) == 4


def test_a_pending_direct_request_may_become_a_rollouts(reg: SqlRegistry) -> None:
    request = reg.request_promotion("churn", 3)
    deferred = reg.defer_request(request.request_id)
    assert deferred.apply_at == "promotion" and deferred.state == "pending"
    assert reg.defer_request(request.request_id).apply_at == "promotion"
    registry(actor="bob").approve(request.request_id)
    assert _production(reg) == 1
    direct = reg.request_promotion("churn", 2)
    registry(actor="bob").approve(direct.request_id)
    with pytest.raises(ls.Conflict, match="already approved: only a pending request"):
        reg.defer_request(direct.request_id)  # it moved production already


def test_the_registrys_mark_cannot_come_in_the_evidence(reg: SqlRegistry) -> None:
    with pytest.raises(ls.Invalid, match="'_apply' is the registry's own"):
        reg.request_promotion("churn", 2, evidence={"_apply": {"at": "promotion"}})
    with pytest.raises(ls.Invalid, match="apply_at must be one of approval, promotion"):
        reg.request_promotion("churn", 2, apply_at="later")
    with pytest.raises(ls.NotFound, match="no approval request with id 'nope'"):
        reg.get_request("nope")
