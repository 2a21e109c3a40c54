"""The registry over each metadata backend: versions, aliases, approvals, lineage."""

from __future__ import annotations

import threading

import pytest

import loopstack as ls
from loopstack.registry import SqlRegistry, lineage, registry
from loopstack.store import audit, open_stores

SIG_AB = {
    "inputs": {
        "type": "columns",
        "columns": [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "float64"}],
    }
}
SIG_A = {"inputs": {"type": "columns", "columns": [{"name": "a", "dtype": "float64"}]}}


@pytest.fixture
def reg(use_db: str) -> SqlRegistry:
    return registry(actor="alice")


def _version(
    reg: SqlRegistry, name: str = "churn", signature: dict | None = None, **kw: object
) -> int:
    v = reg.create_model_version(
        name,
        source=f"x/{name}",
        files={"model.pkl": "0" * 64},
        flavor="sklearn",
        signature=signature or SIG_AB,
        **kw,
    )
    return v.version


def test_versions_are_numbered_per_model(reg: SqlRegistry) -> None:
    assert [_version(reg) for _ in range(3)] == [1, 2, 3]
    assert _version(reg, "other") == 1
    model = reg.get_registered_model("churn")
    assert model.latest_version == 3 and model.created_by == "alice"
    assert [v.version for v in reg.search_model_versions(name="churn")] == [3, 2, 1]
    with pytest.raises(ls.NotFound, match="model 'churn' has no version 9"):
        reg.get_model_version("churn", 9)
    with pytest.raises(ls.NotFound, match="no registered model named 'nope'"):
        reg.get_model_version("nope", 1)


def test_descriptions_and_tags(reg: SqlRegistry) -> None:
    reg.create_registered_model("m", description="d", tags={"team": "risk"})
    _version(reg, "m")
    reg.update_model_version("m", 1, description="first")
    reg.set_model_version_tag("m", 1, "validated", "yes")
    reg.set_registered_model_tag("m", "domain", "churn")
    model = reg.get_registered_model("m")
    assert model.tags == {"team": "risk", "domain": "churn"} and model.description == "d"
    v = reg.get_model_version("m", 1)
    assert v.description == "first" and v.tags == {"validated": "yes"}
    with pytest.raises(ls.AlreadyExists):
        reg.create_registered_model("m")
    with pytest.raises(ls.Invalid, match="model name"):
        reg.create_registered_model("../bad")


def test_aliases_move_with_history(reg: SqlRegistry) -> None:
    _version(reg), _version(reg)
    reg.set_alias("churn", "staging", 1)
    reg.set_alias("churn", "staging", 2, reason="better auc")
    assert reg.get_version_by_alias("churn", "staging").version == 2
    assert reg.get_version_by_alias("churn", "latest").version == 2
    assert reg.get_model_version("churn", 2).aliases == ["staging"]
    moves = reg.alias_history("churn", "staging")
    assert [(m.from_version, m.to_version, m.actor) for m in moves] == [
        (None, 1, "alice"),
        (1, 2, "alice"),
    ]
    assert moves[1].reason == "better auc"
    reg.delete_alias("churn", "staging")
    with pytest.raises(ls.NotFound, match="no alias 'staging'"):
        reg.get_version_by_alias("churn", "staging")
    with pytest.raises(ls.Invalid, match="alias"):
        reg.set_alias("churn", "bad alias!", 1)


def test_an_incompatible_signature_is_refused_unless_forced(reg: SqlRegistry) -> None:
    _version(reg, signature=SIG_AB)
    _version(reg, signature=SIG_A)
    reg.set_alias("churn", "staging", 1)
    with pytest.raises(ls.Conflict, match=r"drops input\(s\) \['b'\]"):
        reg.set_alias("churn", "staging", 2)
    assert reg.get_version_by_alias("churn", "staging").version == 1
    reg.set_alias("churn", "staging", 2, force=True)
    assert reg.get_version_by_alias("churn", "staging").version == 2


def test_production_moves_only_through_an_approval_by_someone_else(reg: SqlRegistry) -> None:
    _version(reg)
    with pytest.raises(ls.Forbidden, match="protected alias.*approved request"):
        reg.set_alias("churn", "production", 1)
    request = reg.request_promotion("churn", 1, evidence={"metrics": {"auc": 0.91}})
    assert request.state == "pending" and request.evidence["metrics"] == {"auc": 0.91}
    assert request.evidence["lineage"]["run"] is False
    with pytest.raises(ls.Forbidden, match="cannot decide on its own promotion"):
        reg.decide(request.request_id, approve=True)
    bob = registry(actor="bob")
    decided = bob.decide(request.request_id, approve=True, comment="looks good")
    assert decided.state == "approved" and decided.decided_by == "bob"
    assert reg.get_version_by_alias("churn", "production").version == 1
    assert reg.get_model_version("churn", 1).approval_state == "approved"
    move = reg.alias_history("churn", "production")[-1]
    assert move.approval_id == request.request_id and move.actor == "bob"
    with pytest.raises(ls.Conflict, match="already approved"):
        bob.decide(request.request_id, approve=False)
    trail = [e["action"] for e in audit.events(open_stores().db, object_type="model")]
    assert "model.request_promotion" in trail and "model.approve" in trail


def test_rejection_leaves_the_alias(reg: SqlRegistry) -> None:
    _version(reg)
    request = reg.request_promotion("churn", 1)
    rejected = registry(actor="bob").decide(request.request_id, approve=False, comment="no")
    assert rejected.state == "rejected"
    with pytest.raises(ls.NotFound):
        reg.get_version_by_alias("churn", "production")


def test_policy_can_approve_automatically_when_gates_pass(reg: SqlRegistry) -> None:
    from sqlalchemy import text

    with open_stores().db.engine.begin() as conn:
        conn.execute(
            text("UPDATE projects SET policy = :p WHERE project_id = 0"),
            {"p": '{"auto_approve_when_gates_pass": true}'},
        )
    _version(reg)
    assert reg.request_promotion("churn", 1).state == "pending"
    _version(reg)
    auto = reg.request_promotion("churn", 2, evidence={"gates_passed": True})
    assert auto.state == "approved" and auto.decided_by == "policy"
    assert reg.get_version_by_alias("churn", "production").version == 2


def test_concurrent_alias_moves_are_serialised_and_all_audited(reg: SqlRegistry) -> None:
    for _ in range(8):
        _version(reg)
    errors: list[BaseException] = []

    def move(version: int) -> None:
        try:
            registry(actor=f"user{version}").set_alias("churn", "staging", version)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    moves = reg.alias_history("churn", "staging")
    assert len(moves) == 8
    # No lost update: each move starts where the previous one ended.
    for before, after in zip(moves, moves[1:], strict=False):
        assert after.from_version == before.to_version
    assert reg.get_version_by_alias("churn", "staging").version == moves[-1].to_version
    events = [
        e
        for e in audit.events(open_stores().db, object_type="model")
        if e["action"] == "model.set_alias"
    ]
    assert len(events) == 8


def test_lineage_links_datasets_runs_and_versions(reg: SqlRegistry) -> None:
    import pandas as pd

    with ls.start_run(experiment="lin") as run:
        ls.log_input(pd.DataFrame({"a": [1.0]}), name="train")
    v1 = reg.create_model_version("churn", source="s", files={}, run_id=run.run_id)
    v2 = reg.create_model_version("churn", source="s", files={}, parents=[("churn", 1)])
    up = lineage(v1)
    assert up.upstream[0] == f"run:{run.run_id}"
    assert up.upstream[1].startswith("dataset:") and up.labels[up.upstream[1]].startswith("train@")
    assert up.downstream == [f"model_version:churn/{v2.version}"]
    down = lineage(f"run:{run.run_id}")
    assert down.downstream == ["model_version:churn/1", "model_version:churn/2"]
    with pytest.raises(ls.Invalid, match="expected a lineage node"):
        lineage("bogus")
    with pytest.raises(ls.NotFound, match="no run with id 'nope'"):
        reg.create_model_version("churn", source="s", files={}, run_id="nope")


def test_the_audit_trail_of_a_version_and_the_evidence_carries_run_metrics(
    reg: SqlRegistry,
) -> None:
    from typer.testing import CliRunner

    from loopstack.cli import app

    with ls.start_run(experiment="ev") as run:
        ls.log_metric("auc", 0.93)
    reg.create_model_version("churn", source="s", files={}, run_id=run.run_id)
    request = reg.request_promotion("churn", 1)
    assert request.evidence["metrics"] == {"auc": 0.93}
    registry(actor="bob").decide(request.request_id, approve=True)
    trail = [
        e["action"]
        for e in audit.events(open_stores().db, object_type="model", object_id="churn/1")
    ]
    assert trail == ["model_version.create", "model.request_promotion", "model.approve"]
    reg.set_alias("churn", "staging", 1)
    out = CliRunner().invoke(app, ["audit", "log", "--object", "models/churn/1"]).stdout
    for action in trail + ["model.set_alias"]:
        assert action in out


def test_the_requester_cannot_approve_and_required_evidence_is_enforced(reg: SqlRegistry) -> None:
    from sqlalchemy import text

    _version(reg)
    bob = registry(actor="bob")
    request = bob.request_promotion("churn", 1)
    with pytest.raises(ls.Forbidden, match="requested the promotion"):
        bob.decide(request.request_id, approve=True)
    assert registry(actor="carol").decide(request.request_id, approve=True).state == "approved"
    with open_stores().db.engine.begin() as conn:
        conn.execute(
            text("UPDATE projects SET policy = :p WHERE project_id = 0"),
            {"p": '{"required_evidence": ["validation"]}'},
        )
    _version(reg)
    with pytest.raises(ls.Invalid, match=r"requires evidence \['validation'\]"):
        reg.request_promotion("churn", 2)
    assert reg.request_promotion("churn", 2, evidence={"validation": {"passed": True}})
