"""Projects: creation, lookup, membership, approval policy; all audited, bad input inert."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopstack.auth import (
    ApprovalPolicy,
    Member,
    Role,
    add_member,
    create_project,
    create_user,
    get_policy,
    get_project,
    list_projects,
    members,
    remove_member,
    set_policy,
)
from loopstack.errors import AlreadyExists, Invalid, NotFound
from loopstack.store import audit
from loopstack.store.metadata import Database
from tests.auth.conftest import snapshot


def test_default_project_exists(db: Database) -> None:
    default = get_project(db, 0)
    assert (default.project_id, default.name) == (0, "default")
    assert get_project(db, "default") == default
    assert default.policy == ApprovalPolicy()
    assert default.policy.protected_aliases == ["production"]


def test_create_get_list(db: Database) -> None:
    fraud = create_project(db, "fraud", "card fraud models", actor="root")
    churn = create_project(db, "churn-v2_eu", actor="root")
    assert fraud.project_id > 0 and churn.project_id > fraud.project_id
    assert get_project(db, "fraud") == fraud == get_project(db, fraud.project_id)
    assert fraud.description == "card fraud models" and fraud.policy == ApprovalPolicy()
    assert [p.name for p in list_projects(db)] == ["churn-v2_eu", "default", "fraud"]
    [event] = audit.events(db, object_type="project", object_id="fraud")
    assert (event["actor"], event["action"]) == ("root", "project.create")
    assert audit.verify(db).ok


@pytest.mark.parametrize(
    "name", ["", "Fraud", "-fraud", "_x", "has space", "a" * 129, "émile", "a/b", "a.b"]
)
def test_bad_names_change_nothing(db: Database, name: str) -> None:
    before = snapshot(db)
    with pytest.raises(Invalid) as err:
        create_project(db, name, actor="root")
    assert err.value.field == "name" and repr(name) in err.value.message
    assert snapshot(db) == before


def test_longest_name_and_duplicates(db: Database) -> None:
    create_project(db, "a" * 128, actor="root")
    before = snapshot(db)
    with pytest.raises(AlreadyExists, match="'default' already exists"):
        create_project(db, "default", actor="root")
    assert snapshot(db) == before


def test_not_found_names_the_project(db: Database) -> None:
    with pytest.raises(NotFound, match="no project with name 'nope'"):
        get_project(db, "nope")
    with pytest.raises(NotFound, match="no project with id 42"):
        get_project(db, 42)
    with pytest.raises(NotFound, match="'nope'"):
        members(db, "nope")
    with pytest.raises(NotFound, match="'nope'"):
        get_policy(db, "nope")


def test_membership_upsert_remove_and_listing(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    create_user(db, "ana", display_name="Ana", actor="t")
    create_user(db, "ben", actor="t")
    fraud = create_project(db, "fraud", actor="root")
    create_project(db, "churn", actor="root")

    assert add_member(db, "fraud", "ana", "viewer", actor="root") == Member(
        "ana", Role.VIEWER, "Ana"
    )
    add_member(db, fraud.project_id, "ben", Role.ML_ENGINEER, actor="root")
    add_member(db, "fraud", "ana", "data-scientist", actor="root")  # upsert
    assert members(db, "fraud") == [
        Member("ana", Role.DATA_SCIENTIST, "Ana"),
        Member("ben", Role.ML_ENGINEER, ""),
    ]
    assert [p.name for p in list_projects(db, user="ana")] == ["fraud"]
    assert [p.name for p in list_projects(db, user="root")] == ["churn", "default", "fraud"]
    assert list_projects(db, user="ghost") == []

    remove_member(db, "fraud", "ben", actor="root")
    assert [m.user for m in members(db, "fraud")] == ["ana"]
    assert list_projects(db, user="ben") == []

    actions = [(e["action"], e["object_id"]) for e in audit.events(db, object_type="project")]
    assert actions[-4:] == [
        ("project.add_member", "fraud"),
        ("project.add_member", "fraud"),
        ("project.add_member", "fraud"),
        ("project.remove_member", "fraud"),
    ]


def test_bad_membership_changes_nothing(db: Database) -> None:
    create_user(db, "ana", actor="t")
    create_project(db, "fraud", actor="t")
    add_member(db, "fraud", "ana", "viewer", actor="t")
    before = snapshot(db)
    with pytest.raises(Invalid, match="'owner'"):
        add_member(db, "fraud", "ana", "owner", actor="t")
    with pytest.raises(NotFound, match="no user named 'ghost'"):
        add_member(db, "fraud", "ghost", "viewer", actor="t")
    with pytest.raises(NotFound, match="no project with name 'nope'"):
        add_member(db, "nope", "ana", "viewer", actor="t")
    with pytest.raises(NotFound, match="'ghost' is not a member of project 'fraud'"):
        remove_member(db, "fraud", "ghost", actor="t")
    with pytest.raises(NotFound):
        remove_member(db, "nope", "ana", actor="t")
    assert snapshot(db) == before
    assert members(db, "fraud") == [Member("ana", Role.VIEWER, "")]


def test_policy_round_trip_and_audit(db: Database) -> None:
    create_project(db, "fraud", actor="root")
    got = set_policy(
        db,
        "fraud",
        {
            "protected_aliases": ["production", "champion", "production"],
            "allow_self_approval": True,
            "required_evidence": ["eval_report"],
        },
        actor="root",
    )
    assert got == ApprovalPolicy(
        protected_aliases=["production", "champion"],
        allow_self_approval=True,
        required_evidence=["eval_report"],
    )
    assert get_policy(db, "fraud") == got
    assert get_policy(db, "default") == ApprovalPolicy()  # other projects untouched
    # Stored in full, so readers that only know the older fields (the registry) see them all.
    raw = db.read(
        lambda c: c.exec_driver_sql("SELECT policy FROM projects WHERE name = 'fraud'").scalar()
    )
    assert json.loads(raw)["auto_approve_when_gates_pass"] is False
    set_policy(db, "fraud", ApprovalPolicy(protected_aliases=[]), actor="root")
    assert get_policy(db, "fraud").protected_aliases == []
    events = audit.events(db, object_type="project", object_id="fraud")
    assert [e["action"] for e in events] == [
        "project.create",
        "project.set_policy",
        "project.set_policy",
    ]


BAD_POLICIES: list[tuple[Any, str]] = [
    ({"protected_alias": ["production"]}, "protected_alias"),
    ({"allow_self_approval": "yes"}, "allow_self_approval"),
    ({"allow_self_approval": 1}, "allow_self_approval"),
    ({"auto_approve_when_gates_pass": None}, "auto_approve_when_gates_pass"),
    ({"protected_aliases": "production"}, "protected_aliases"),
    ({"protected_aliases": [""]}, "protected_aliases"),
    ({"protected_aliases": ["prod uction"]}, "protected_aliases"),
    ({"required_evidence": [1]}, "required_evidence"),
    ({"required_evidence": ["ok"], "extra": True}, "extra"),
]


@pytest.mark.parametrize("policy, field", BAD_POLICIES)
def test_invalid_policy_names_the_field_and_changes_nothing(
    db: Database, policy: Any, field: str
) -> None:
    create_project(db, "fraud", actor="root")
    before = snapshot(db)
    with pytest.raises(Invalid) as err:
        set_policy(db, "fraud", policy, actor="root")
    assert repr(field) in err.value.message and err.value.field == f"policy.{field}"
    assert snapshot(db) == before


def test_policy_must_be_a_mapping(db: Database) -> None:
    with pytest.raises(Invalid, match="mapping"):
        set_policy(db, "default", ["production"], actor="root")  # type: ignore[arg-type]
