"""Users: registration, listing, disabling (their tokens stop), enabling."""

from __future__ import annotations

import pytest

from loopstack.auth import (
    Role,
    UserInfo,
    add_member,
    create_token,
    create_user,
    disable_user,
    enable_user,
    get_user,
    list_projects,
    list_users,
    role_in,
    verify_token,
)
from loopstack.errors import AlreadyExists, Conflict, Invalid, NotFound
from loopstack.store import audit
from loopstack.store.metadata import Database
from tests.auth.conftest import snapshot


def test_create_get_list(db: Database) -> None:
    alice = create_user(db, "alice", display_name="Alice L.", is_admin=True, actor="root")
    bob = create_user(db, "bob.smith@corp.example", actor="alice")
    assert isinstance(alice, UserInfo) and alice.is_admin and not alice.disabled
    assert get_user(db, "alice") == alice
    assert get_user(db, "bob.smith@corp.example") == bob and bob.display_name == ""
    assert [u.name for u in list_users(db)] == ["alice", "bob.smith@corp.example"]
    events = audit.events(db, object_type="user")
    assert [(e["action"], e["object_id"], e["actor"]) for e in events] == [
        ("user.create", "alice", "root"),
        ("user.create", "bob.smith@corp.example", "alice"),
    ]


@pytest.mark.parametrize(
    "name",
    ["", " alice", "-x", "a b", "anonymous", "Anonymous", "policy", "a" * 257, "al/ice", "al:ice"],
)
def test_bad_names_change_nothing(db: Database, name: str) -> None:
    before = snapshot(db)
    with pytest.raises(Invalid) as err:
        create_user(db, name, actor="root")
    assert err.value.field == "name" and repr(name) in err.value.message
    assert snapshot(db) == before


def test_duplicates_and_unknowns(db: Database) -> None:
    create_user(db, "alice", actor="root")
    before = snapshot(db)
    with pytest.raises(AlreadyExists, match="'alice' already exists"):
        create_user(db, "alice", is_admin=True, actor="root")
    with pytest.raises(Invalid, match="display name"):
        create_user(db, "bob", display_name="x" * 300, actor="root")
    with pytest.raises(NotFound, match="no user named 'ghost'"):
        get_user(db, "ghost")
    with pytest.raises(NotFound, match="no user named 'ghost'"):
        disable_user(db, "ghost", actor="root")
    with pytest.raises(NotFound, match="no user named 'ghost'"):
        enable_user(db, "ghost", actor="root")
    assert snapshot(db) == before
    assert not get_user(db, "alice").is_admin


def test_disable_stops_tokens_and_roles_and_enable_restores(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    create_user(db, "ana", actor="root")
    add_member(db, "default", "ana", "data-scientist", actor="root")
    secret, _ = create_token(db, name="laptop", user="ana", actor="root")
    assert verify_token(db, secret) is not None

    disabled = disable_user(db, "ana", actor="root")
    assert disabled.disabled and get_user(db, "ana").disabled_at is not None
    assert verify_token(db, secret) is None
    assert role_in(db, "ana", 0) is None and list_projects(db, user="ana") == []
    with pytest.raises(Conflict, match="disabled"):
        create_token(db, name="again", user="ana", actor="root")
    assert [u.name for u in list_users(db, include_disabled=False)] == ["root"]

    assert not enable_user(db, "ana", actor="root").disabled
    assert verify_token(db, secret) is not None
    assert role_in(db, "ana", 0) is Role.DATA_SCIENTIST
    actions = [e["action"] for e in audit.events(db, object_type="user", object_id="ana")]
    assert actions == ["user.create", "user.disable", "user.enable"]


def test_the_last_admin_cannot_be_disabled(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    before = snapshot(db)
    with pytest.raises(Conflict, match="last enabled admin"):
        disable_user(db, "root", actor="t")
    assert snapshot(db) == before
    create_user(db, "root2", is_admin=True, actor="t")
    disable_user(db, "root", actor="t")
    with pytest.raises(Conflict, match="last enabled admin"):
        disable_user(db, "root2", actor="t")
