"""Roles, what each may do, and who holds which role in a project.

The roles are ordered; each may do everything the one before it may::

    viewer < data-scientist < ml-engineer < admin

Global admins (``users.is_admin``) are admin in every project; a disabled
user holds no role anywhere. While no user is registered at all the store is
in *bootstrap mode* (a fresh install, or one upgraded from before users
existed): every token's user then counts as a global admin, as every token
could do everything before roles existed.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, cast

from sqlalchemy import Connection, Table, exists, select

from loopstack.errors import Forbidden, Invalid
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import ProjectMember, User

if TYPE_CHECKING:
    from loopstack.auth._tokens import Principal

__all__ = [
    "MINIMUM_ROLE",
    "Permission",
    "Role",
    "check",
    "is_bootstrap",
    "require",
    "require_admin",
    "role_in",
    "role_of",
]

_USERS = cast(Table, User.__table__)
_MEMBERS = cast(Table, ProjectMember.__table__)


class Role(enum.Enum):
    """A member's role in a project; ordered, so ``role >= Role.ML_ENGINEER`` reads as meant."""

    VIEWER = "viewer"
    DATA_SCIENTIST = "data-scientist"
    ML_ENGINEER = "ml-engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, text: str | Role) -> Role:
        """``Role.parse("ml-engineer")`` -> ``Role.ML_ENGINEER``; anything else is Invalid."""
        if isinstance(text, Role):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            valid = ", ".join(repr(r.value) for r in cls)
            raise Invalid(
                f"the role must be one of {valid}; got {text!r} instead", field="role"
            ) from None

    def allows(self, permission: Permission | str) -> bool:
        """Whether this role may do ``permission`` (see ``MINIMUM_ROLE``)."""
        return self >= MINIMUM_ROLE[Permission.parse(permission)]

    def __str__(self) -> str:
        return self.value

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {role: i for i, role in enumerate(Role)}


class Permission(enum.Enum):
    """What a caller wants to do. ``READ``/``WRITE``/``ADMIN`` are the coarse levels the
    server's route table uses; the others name the specific acts of DESIGN.md's role list."""

    READ = "read"
    WRITE = "write"
    LOG_RUNS = "log-runs"
    REGISTER_VERSIONS = "register-versions"
    WRITE_FEATURES = "write-features"
    DEPLOY_STAGING = "deploy-staging"
    APPROVE = "approve"
    MANAGE_USERS = "manage-users"
    MANAGE_TOKENS = "manage-tokens"
    MANAGE_PROJECTS = "manage-projects"
    OVERRIDE_PRODUCTION = "override-production"
    ADMIN = "admin"

    @classmethod
    def parse(cls, text: str | Permission) -> Permission:
        if isinstance(text, Permission):
            return text
        try:
            return cls(text)
        except ValueError:
            valid = ", ".join(repr(p.value) for p in cls)
            raise Invalid(
                f"the permission must be one of {valid}; got {text!r} instead", field="permission"
            ) from None

    def __str__(self) -> str:
        return self.value


#: The least role that may do each thing.
MINIMUM_ROLE: dict[Permission, Role] = {
    Permission.READ: Role.VIEWER,
    Permission.WRITE: Role.DATA_SCIENTIST,
    Permission.LOG_RUNS: Role.DATA_SCIENTIST,
    Permission.REGISTER_VERSIONS: Role.DATA_SCIENTIST,
    Permission.WRITE_FEATURES: Role.DATA_SCIENTIST,
    Permission.DEPLOY_STAGING: Role.ML_ENGINEER,
    Permission.APPROVE: Role.ML_ENGINEER,
    Permission.MANAGE_USERS: Role.ADMIN,
    Permission.MANAGE_TOKENS: Role.ADMIN,
    Permission.MANAGE_PROJECTS: Role.ADMIN,
    Permission.OVERRIDE_PRODUCTION: Role.ADMIN,
    Permission.ADMIN: Role.ADMIN,
}


def is_bootstrap(conn: Connection) -> bool:
    """True while no user is registered: every token's user then counts as a global admin."""
    return not conn.execute(select(exists().select_from(_USERS))).scalar()


def role_in_conn(conn: Connection, user: str, project_id: int) -> Role | None:
    """``role_in`` inside the caller's transaction."""
    row = conn.execute(
        select(_USERS.c.is_admin, _USERS.c.disabled_at).where(_USERS.c.name == user)
    ).first()
    if row is None:
        return Role.ADMIN if is_bootstrap(conn) else None
    if row.disabled_at is not None:
        return None
    if row.is_admin:
        return Role.ADMIN
    role = conn.execute(
        select(_MEMBERS.c.role).where(_MEMBERS.c.project_id == project_id, _MEMBERS.c.user == user)
    ).scalar()
    return Role(role) if role is not None else None


def role_in(db: Database, user: str, project_id: int) -> Role | None:
    """The role ``user`` holds in project ``project_id``, or None if they hold none.

    >>> role_in(db, "alice", 0)   # doctest: +SKIP
    <Role.DATA_SCIENTIST: 'data-scientist'>
    """
    return db.read(lambda conn: role_in_conn(conn, user, project_id))


def check(role: Role | None, permission: Permission | str, *, project: str = "") -> Role:
    """``role`` if it allows ``permission``; else Forbidden, naming the role it needs."""
    perm = Permission.parse(permission)
    need = MINIMUM_ROLE[perm]
    where = f" in project {project!r}" if project else ""
    if role is None:
        raise Forbidden(
            f"{perm.value!r} needs the {need.value!r} role{where}; the caller holds no role there"
        )
    if role < need:
        raise Forbidden(
            f"{perm.value!r} needs the {need.value!r} role{where}; the caller is {role.value!r}"
        )
    return role


def role_of(db: Database, principal: Principal, project_id: int) -> Role | None:
    """The role a caller holds in a project: their user's role there, or None outside the
    project their token is scoped to."""
    if principal.project_id is not None and principal.project_id != project_id:
        return None
    return role_in(db, principal.user, project_id)


def require(
    db: Database, principal: Principal, project_id: int, permission: Permission | str
) -> Role:
    """The caller's role in the project if it allows ``permission``; else Forbidden.

    >>> require(db, principal, 0, Permission.APPROVE)   # doctest: +SKIP
    <Role.ML_ENGINEER: 'ml-engineer'>
    """
    role = role_of(db, principal, project_id)
    if role is not None and role.allows(permission):
        return role
    from loopstack.store.metadata.schema import Project

    name = db.read(
        lambda conn: conn.execute(
            select(Project.name).where(Project.project_id == project_id)
        ).scalar()
    )
    if principal.project_id is not None and principal.project_id != project_id:
        raise Forbidden(
            f"this token acts only in project #{principal.project_id}, not in "
            f"{name or project_id!r}"
        )
    return check(role, permission, project=name or f"#{project_id}")


def require_admin(principal: Principal) -> None:
    """Forbidden unless the caller is a global admin acting with an unscoped token: the check
    for work outside any one project (users, tokens of others, creating projects)."""
    if not principal.is_admin:
        raise Forbidden(f"this needs a global admin; {principal.user!r} is not one")
    if principal.project_id is not None:
        raise Forbidden(
            "this needs a token that is not scoped to one project; "
            f"this one acts only in project #{principal.project_id}"
        )
