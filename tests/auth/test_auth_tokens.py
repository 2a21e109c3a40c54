"""Tokens: the bootstrap rule, users that must exist, project scope, disabled users."""

from __future__ import annotations

import pytest

from loopstack.auth import (
    Principal,
    Role,
    add_member,
    create_project,
    create_token,
    create_user,
    get_user,
    list_tokens,
    remove_member,
    revoke_token,
    role_of,
    verify_token,
)
from loopstack.errors import Invalid, NotFound
from loopstack.store import audit
from loopstack.store.metadata import Database
from tests.auth.conftest import snapshot


def test_first_token_registers_its_user_as_admin(db: Database) -> None:
    secret, info = create_token(db, name="ci", user="alice", actor="ops")
    alice = get_user(db, "alice")
    assert alice.is_admin and not alice.disabled
    assert verify_token(db, secret) == Principal("alice", info.token_id, None, True)
    # both changes are in the log, in one transaction: the user first, then the token
    tail = audit.events(db)[-2:]
    assert [(e["action"], e["object_id"], e["actor"]) for e in tail] == [
        ("user.create", "alice", "ops"),
        ("token.create", info.token_id, "ops"),
    ]
    assert audit.verify(db).ok


def test_after_bootstrap_a_token_needs_an_existing_user(db: Database) -> None:
    create_token(db, name="ci", user="alice")
    before = snapshot(db)
    with pytest.raises(NotFound, match="no user named 'bob'.*loopstack users create bob"):
        create_token(db, name="x", user="bob")
    assert snapshot(db) == before
    create_user(db, "bob", actor="alice")
    secret, _ = create_token(db, name="x", user="bob")
    principal = verify_token(db, secret)
    assert principal is not None and principal.user == "bob" and not principal.is_admin


def test_bad_bootstrap_name_changes_nothing(db: Database) -> None:
    before = snapshot(db)
    with pytest.raises(Invalid, match="user name"):
        create_token(db, name="ci", user="not a name")
    with pytest.raises(Invalid, match="a token needs a name and a user"):
        create_token(db, name="", user="alice")
    with pytest.raises(Invalid, match="at most 256"):
        create_token(db, name="n" * 257, user="alice")
    assert snapshot(db) == before


def test_tokens_made_before_users_existed(db: Database) -> None:
    """A token whose user has no row (from before migration 0002) works only in bootstrap."""
    import hashlib
    import time

    secret = "lst_" + "legacy" * 8
    from sqlalchemy import text

    insert = text(
        'INSERT INTO tokens (token_id, name, "user", token_hash, prefix, created_at) '
        "VALUES ('legacy1', 'old', 'carol', :hash, 'lst_legacy', :ts)"
    )
    params = {"hash": hashlib.sha256(secret.encode()).hexdigest(), "ts": int(time.time() * 1000)}
    db.write(
        lambda c: c.execute(insert, params),
        actor="t",
        action="token.create",
        object_type="token",
        object_id="legacy1",
        payload={},
    )
    assert verify_token(db, secret) == Principal("carol", "legacy1", None, True)
    create_user(db, "dave", is_admin=True, actor="t")
    assert verify_token(db, secret) is None
    create_user(db, "carol", actor="dave")
    assert verify_token(db, secret) == Principal("carol", "legacy1", None, False)


def test_project_scoped_tokens(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    create_user(db, "ana", actor="root")
    fraud = create_project(db, "fraud", actor="root")
    add_member(db, "fraud", "ana", "ml-engineer", actor="root")
    add_member(db, "default", "ana", "viewer", actor="root")

    secret, info = create_token(db, name="fraud-ci", user="ana", project="fraud", actor="root")
    assert info.project_id == fraud.project_id
    principal = verify_token(db, secret)
    assert principal == Principal("ana", info.token_id, fraud.project_id, False)
    assert role_of(db, principal, fraud.project_id) is Role.ML_ENGINEER
    assert role_of(db, principal, 0) is None
    _, by_id = create_token(db, name="by-id", user="ana", project=0, actor="root")
    assert by_id.project_id == 0
    [event] = audit.events(db, object_type="token", object_id=info.token_id)
    assert event["action"] == "token.create" and event["actor"] == "root"

    # losing the membership takes the token's power with it
    remove_member(db, "fraud", "ana", actor="root")
    assert role_of(db, principal, fraud.project_id) is None
    assert [t.project_id for t in list_tokens(db, user="ana")] == [fraud.project_id, 0]
    assert list_tokens(db, user="nobody") == []


def test_scoping_to_a_foreign_or_missing_project_changes_nothing(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    create_user(db, "ana", actor="root")
    create_project(db, "fraud", actor="root")
    before = snapshot(db)
    with pytest.raises(Invalid, match="'ana' holds no role in project 'fraud'") as err:
        create_token(db, name="x", user="ana", project="fraud")
    assert err.value.field == "project"
    with pytest.raises(NotFound, match="no project with name 'nope'"):
        create_token(db, name="x", user="ana", project="nope")
    with pytest.raises(NotFound, match="no project with id 99"):
        create_token(db, name="x", user="root", project=99)
    assert snapshot(db) == before
    # a global admin may scope a token to any project
    _, info = create_token(db, name="x", user="root", project="fraud")
    assert info.project_id is not None


def test_revoked_and_unknown_tokens(db: Database) -> None:
    secret, info = create_token(db, name="ci", user="alice")
    assert verify_token(db, "lst_unknown") is None and verify_token(db, "nope") is None
    revoke_token(db, info.token_id, actor="alice")
    assert verify_token(db, secret) is None
    with pytest.raises(NotFound):
        revoke_token(db, info.token_id)
