"""Roles: their order, what each may do, and who holds which role where."""

from __future__ import annotations

import pytest

from loopstack.auth import (
    MINIMUM_ROLE,
    Permission,
    Principal,
    Role,
    add_member,
    check,
    create_project,
    create_token,
    create_user,
    disable_user,
    require,
    require_admin,
    role_in,
    role_of,
)
from loopstack.errors import Forbidden, Invalid
from loopstack.store.metadata import Database


def test_roles_are_ordered_with_exact_values() -> None:
    assert [r.value for r in Role] == ["viewer", "data-scientist", "ml-engineer", "admin"]
    assert Role.VIEWER < Role.DATA_SCIENTIST < Role.ML_ENGINEER < Role.ADMIN
    assert Role.ADMIN >= Role.ADMIN and Role.VIEWER <= Role.VIEWER
    assert max([Role.ML_ENGINEER, Role.VIEWER, Role.ADMIN]) is Role.ADMIN
    assert sorted(Role, reverse=True)[0] is Role.ADMIN
    assert str(Role.ML_ENGINEER) == "ml-engineer"


@pytest.mark.parametrize(
    "text, role",
    [
        ("viewer", Role.VIEWER),
        ("Data-Scientist", Role.DATA_SCIENTIST),
        (" ml-engineer ", Role.ML_ENGINEER),
        ("admin", Role.ADMIN),
        (Role.ADMIN, Role.ADMIN),
    ],
)
def test_parse(text: str, role: Role) -> None:
    assert Role.parse(text) is role


@pytest.mark.parametrize("text", ["", "owner", "data_scientist", "ml engineer", "admins"])
def test_parse_names_the_valid_roles(text: str) -> None:
    with pytest.raises(Invalid) as err:
        Role.parse(text)
    msg = err.value.message
    assert all(r in msg for r in ("'viewer'", "'data-scientist'", "'ml-engineer'", "'admin'"))
    assert repr(text) in msg and err.value.field == "role"


# Each row: permission, then whether viewer / data-scientist / ml-engineer / admin may do it.
MATRIX = [
    ("read", (True, True, True, True)),
    ("write", (False, True, True, True)),
    ("log-runs", (False, True, True, True)),
    ("register-versions", (False, True, True, True)),
    ("write-features", (False, True, True, True)),
    ("deploy-staging", (False, False, True, True)),
    ("approve", (False, False, True, True)),
    ("manage-users", (False, False, False, True)),
    ("manage-tokens", (False, False, False, True)),
    ("manage-projects", (False, False, False, True)),
    ("override-production", (False, False, False, True)),
    ("admin", (False, False, False, True)),
]


@pytest.mark.parametrize("permission, allowed", MATRIX)
def test_what_each_role_may_do(permission: str, allowed: tuple[bool, ...]) -> None:
    assert tuple(role.allows(permission) for role in Role) == allowed
    assert tuple(role.allows(Permission(permission)) for role in Role) == allowed


def test_every_permission_has_a_minimum_role() -> None:
    assert set(MINIMUM_ROLE) == set(Permission)
    with pytest.raises(Invalid, match="'approve'"):
        Role.ADMIN.allows("deploy-production-now")


def test_check_says_which_role_is_needed() -> None:
    assert check(Role.ADMIN, "approve") is Role.ADMIN
    with pytest.raises(
        Forbidden,
        match="'approve' needs the 'ml-engineer' role in project "
        "'fraud'; the caller is 'data-scientist'",
    ):
        check(Role.DATA_SCIENTIST, Permission.APPROVE, project="fraud")
    with pytest.raises(Forbidden, match="holds no role"):
        check(None, "read")


def test_role_in(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    for name in ("ana", "ben", "cy"):
        create_user(db, name, actor="t")
    fraud = create_project(db, "fraud", actor="t")
    add_member(db, "fraud", "ana", "data-scientist", actor="t")
    add_member(db, "fraud", "ben", "viewer", actor="t")
    add_member(db, "default", "ben", "ml-engineer", actor="t")
    pid = fraud.project_id
    assert role_in(db, "ana", pid) is Role.DATA_SCIENTIST
    assert role_in(db, "ana", 0) is None
    assert role_in(db, "ben", pid) is Role.VIEWER and role_in(db, "ben", 0) is Role.ML_ENGINEER
    assert role_in(db, "cy", pid) is None
    assert role_in(db, "root", pid) is Role.ADMIN and role_in(db, "root", 0) is Role.ADMIN
    assert role_in(db, "nobody", pid) is None  # users exist: no bootstrap
    assert role_in(db, "root", 12345) is Role.ADMIN  # admins everywhere
    disable_user(db, "ana", actor="t")
    assert role_in(db, "ana", pid) is None
    add_member(db, "fraud", "ana", "admin", actor="t")  # still disabled
    assert role_in(db, "ana", pid) is None


def test_bootstrap_mode_every_user_is_admin(db: Database) -> None:
    assert role_in(db, "whoever", 0) is Role.ADMIN
    create_user(db, "first", actor="t")
    assert role_in(db, "whoever", 0) is None
    assert role_in(db, "first", 0) is None  # not admin, not a member


def test_scoped_principals_act_only_in_their_project(db: Database) -> None:
    create_user(db, "root", is_admin=True, actor="t")
    create_user(db, "ana", actor="t")
    fraud = create_project(db, "fraud", actor="t")
    add_member(db, "fraud", "ana", "ml-engineer", actor="t")
    add_member(db, "default", "ana", "ml-engineer", actor="t")
    everywhere = Principal("ana", "t1")
    scoped = Principal("ana", "t2", project_id=fraud.project_id)
    assert role_of(db, everywhere, 0) is Role.ML_ENGINEER
    assert role_of(db, scoped, 0) is None
    assert role_of(db, scoped, fraud.project_id) is Role.ML_ENGINEER
    assert require(db, scoped, fraud.project_id, "approve") is Role.ML_ENGINEER
    with pytest.raises(Forbidden, match="acts only in project"):
        require(db, scoped, 0, "read")
    with pytest.raises(
        Forbidden, match="'override-production' needs the 'admin' role in project 'fraud'"
    ):
        require(db, everywhere, fraud.project_id, "override-production")
    admin_scoped = Principal("root", "t3", project_id=fraud.project_id, is_admin=True)
    assert role_of(db, admin_scoped, fraud.project_id) is Role.ADMIN
    assert role_of(db, admin_scoped, 0) is None
    require_admin(Principal("root", "t4", is_admin=True))
    with pytest.raises(Forbidden, match="not scoped"):
        require_admin(admin_scoped)
    with pytest.raises(Forbidden, match="global admin"):
        require_admin(everywhere)


def test_principal_from_token_carries_scope_and_admin(db: Database) -> None:
    from loopstack.auth import verify_token

    secret, info = create_token(db, name="boot", user="root")  # bootstrap: root is admin
    p = verify_token(db, secret)
    assert p == Principal("root", info.token_id, None, True)
    create_user(db, "ana", actor="root")
    add_member(db, "default", "ana", "viewer", actor="root")
    secret, info = create_token(db, name="ci", user="ana", project="default", actor="root")
    assert verify_token(db, secret) == Principal("ana", info.token_id, 0, False)
