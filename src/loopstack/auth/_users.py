"""Users: who may hold tokens and roles. Disabling a user stops every token of theirs."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, update

from loopstack.errors import AlreadyExists, Conflict, Invalid, NotFound
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import User

__all__ = [
    "USER_NAME",
    "UserInfo",
    "create_user",
    "disable_user",
    "enable_user",
    "get_user",
    "list_users",
]

_USERS = cast(Table, User.__table__)
#: a login or an e-mail address: letters, digits and ``. _ @ + -``, starting alphanumeric
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,255}")
#: names the server uses for callers that are not users
RESERVED_USER_NAMES = frozenset({"anonymous", "policy"})


@dataclass(frozen=True)
class UserInfo:
    name: str
    display_name: str
    is_admin: bool
    created_at: int
    disabled_at: int | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


def _info(row: Any) -> UserInfo:
    return UserInfo(
        row.name, row.display_name or "", bool(row.is_admin), row.created_at, row.disabled_at
    )


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name; else Invalid saying what is expected."""
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise Invalid(
            "a user name must be 1-256 letters, digits or '._@+-', starting with a "
            f"letter or digit; got {name!r} instead",
            field="name",
        )
    if name.lower() in RESERVED_USER_NAMES:
        raise Invalid(f"the user name {name!r} is reserved; choose another", field="name")
    return name


def insert_user(conn: Connection, name: str, *, display_name: str, is_admin: bool) -> UserInfo:
    info = UserInfo(name, display_name, is_admin, int(time.time() * 1000), None)
    conn.execute(
        _USERS.insert().values(
            name=name, display_name=display_name, is_admin=is_admin, created_at=info.created_at
        )
    )
    return info


def user_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(_USERS).where(_USERS.c.name == name)).first()
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return row


def create_user(
    db: Database, name: str, *, display_name: str = "", is_admin: bool = False, actor: str
) -> UserInfo:
    """Register a user. ``is_admin`` makes them admin in every project.

    >>> create_user(db, "alice", display_name="Alice Liddell", actor="root")  # doctest: +SKIP
    """
    check_user_name(name)
    if not isinstance(display_name, str) or len(display_name) > 256:
        raise Invalid(
            f"a display name must be text of at most 256 characters; got {display_name!r}",
            field="display_name",
        )

    def run(conn: Connection) -> UserInfo:
        if conn.execute(select(_USERS.c.name).where(_USERS.c.name == name)).first():
            raise AlreadyExists(f"a user named {name!r} already exists")
        return insert_user(conn, name, display_name=display_name, is_admin=bool(is_admin))

    return db.write(
        run,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=name,
        payload={"name": name, "display_name": display_name, "is_admin": bool(is_admin)},
    )


def get_user(db: Database, name: str) -> UserInfo:
    """One user; NotFound naming it if there is none."""
    return _info(db.read(lambda conn: user_row(conn, name)))


def list_users(db: Database, *, include_disabled: bool = True) -> list[UserInfo]:
    """Every user, by name."""
    q = select(_USERS).order_by(_USERS.c.name)
    if not include_disabled:
        q = q.where(_USERS.c.disabled_at.is_(None))
    return [_info(r) for r in db.read(lambda conn: conn.execute(q).all())]


def disable_user(db: Database, name: str, *, actor: str) -> UserInfo:
    """Disable a user: their tokens stop working and they hold no role anywhere.

    Memberships and tokens are kept, so ``enable_user`` restores them. The last enabled
    global admin cannot be disabled (Conflict): someone must be able to undo it.
    """

    def run(conn: Connection) -> UserInfo:
        row = user_row(conn, name)
        if row.disabled_at is not None:
            return _info(row)
        if row.is_admin:
            admins = conn.execute(
                select(func.count())
                .select_from(_USERS)
                .where(_USERS.c.is_admin.is_(True), _USERS.c.disabled_at.is_(None))
            ).scalar_one()
            if admins <= 1:
                raise Conflict(
                    f"{name!r} is the last enabled admin; make another user an "
                    "admin before disabling them"
                )
        now = int(time.time() * 1000)
        conn.execute(update(_USERS).where(_USERS.c.name == name).values(disabled_at=now))
        return replace(_info(row), disabled_at=now)

    return db.write(
        run,
        actor=actor,
        action="user.disable",
        object_type="user",
        object_id=name,
        payload={"name": name},
    )


def enable_user(db: Database, name: str, *, actor: str) -> UserInfo:
    """Undo ``disable_user``: the user's unrevoked tokens and memberships work again."""

    def run(conn: Connection) -> UserInfo:
        row = user_row(conn, name)
        conn.execute(update(_USERS).where(_USERS.c.name == name).values(disabled_at=None))
        return replace(_info(row), disabled_at=None)

    return db.write(
        run,
        actor=actor,
        action="user.enable",
        object_type="user",
        object_id=name,
        payload={"name": name},
    )
