"""API tokens: random secrets shown once, stored only as their sha256.

A token acts as one registered user, in every project that user belongs to, or
(``project=...``) in that one project only. The bootstrap rule: while no user
is registered at all, ``create_token`` registers the token's user as the first
user, a global admin, in the same audited transaction; from then on a token
needs an existing, enabled user. Tokens whose user has no row (made before
users existed) keep working, as a global admin's, only while no user is
registered.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, select, update

from loopstack.auth._roles import is_bootstrap, role_in_conn
from loopstack.auth._users import check_user_name, insert_user
from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.store import audit
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import AuditHead, Token, User

__all__ = [
    "PREFIX",
    "Principal",
    "TokenInfo",
    "create_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

_T = cast(Table, Token.__table__)
_USERS = cast(Table, User.__table__)
PREFIX = "lst_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``user`` is what the audit log records.

    ``project_id`` is the token's scope (None: every project the user belongs to);
    ``is_admin`` says the user is a global admin (admin in every project in scope).
    """

    user: str
    token_id: str | None = None
    project_id: int | None = None
    is_admin: bool = False


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    name: str
    user: str
    prefix: str
    created_at: int
    revoked_at: int | None
    #: None: the token acts in every project its user belongs to
    project_id: int | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: object) -> TokenInfo:
    r = cast(Token, row)
    return TokenInfo(r.token_id, r.name, r.user, r.prefix, r.created_at, r.revoked_at, r.project_id)


def create_token(
    db: Database, *, name: str, user: str, project: str | int | None = None, actor: str = "admin"
) -> tuple[str, TokenInfo]:
    """Create a token for ``user``; returns (the secret, shown only now, and its record).

    ``project`` (a name or id) limits the token to that project; the user must hold a
    role there. The user must exist and be enabled, except in bootstrap mode (no user
    registered yet), where the user is registered as the first, admin, user.

    >>> secret, info = create_token(db, name="ci", user="alice", project="fraud")  # doctest: +SKIP
    """
    from loopstack.auth._projects import project_row

    if not name or not user:
        raise Invalid(
            f"a token needs a name and a user; got name={name!r}, user={user!r}", field="name"
        )
    if len(name) > 256:
        raise Invalid(
            f"a token's name must be at most 256 characters; got {len(name)}", field="name"
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    token_id = uuid.uuid4().hex
    created_at = int(time.time() * 1000)

    def run(conn: Connection) -> TokenInfo:
        # Serialise token creation with every audited writer (PostgreSQL; SQLite's write
        # transaction already does), so two first tokens cannot both bootstrap.
        conn.execute(select(AuditHead.seq).where(AuditHead.id == 1).with_for_update())
        row = conn.execute(select(_USERS.c.disabled_at).where(_USERS.c.name == user)).first()
        if row is None:
            if not is_bootstrap(conn):
                raise NotFound(
                    f"no user named {user!r}; create it first with `loopstack users create {user}`"
                )
            check_user_name(user)
            insert_user(conn, user, display_name="", is_admin=True)
            audit.append(
                conn,
                keys=db.audit_keys,
                actor=actor,
                action="user.create",
                object_type="user",
                object_id=user,
                payload={"name": user, "is_admin": True, "bootstrap": True},
            )
        elif row.disabled_at is not None:
            raise Conflict(f"user {user!r} is disabled; enable it before creating tokens")
        project_id = None
        if project is not None:
            prow = project_row(conn, project)
            if role_in_conn(conn, user, prow.project_id) is None:
                raise Invalid(
                    f"user {user!r} holds no role in project {prow.name!r}; add "
                    "them as a member before scoping a token to it",
                    field="project",
                )
            project_id = prow.project_id
        conn.execute(
            _T.insert().values(
                token_id=token_id,
                name=name,
                user=user,
                token_hash=_hash(secret),
                prefix=secret[:10],
                created_at=created_at,
                project_id=project_id,
            )
        )
        return TokenInfo(token_id, name, user, secret[:10], created_at, None, project_id)

    info = db.write(
        run,
        actor=actor,
        action="token.create",
        object_type="token",
        object_id=token_id,
        payload={"name": name, "user": user, "project": project},
    )
    return secret, info


def verify_token(db: Database, secret: str) -> Principal | None:
    """The principal a token stands for, or None if it is unknown or revoked, or its user is
    disabled (or unregistered, once any user is registered)."""
    if not secret.startswith(PREFIX):
        return None

    def run(conn: Connection) -> Principal | None:
        row = conn.execute(
            select(
                _T.c.token_id,
                _T.c.user,
                _T.c.revoked_at,
                _T.c.project_id,
                _USERS.c.name.label("registered"),
                _USERS.c.is_admin,
                _USERS.c.disabled_at,
            )
            .select_from(_T.outerjoin(_USERS, _USERS.c.name == _T.c.user))
            .where(_T.c.token_hash == _hash(secret))
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        if row.registered is None:
            if not is_bootstrap(conn):
                return None
            return Principal(row.user, row.token_id, row.project_id, is_admin=True)
        if row.disabled_at is not None:
            return None
        return Principal(row.user, row.token_id, row.project_id, is_admin=bool(row.is_admin))

    return db.read(run)


def list_tokens(db: Database, *, user: str | None = None) -> list[TokenInfo]:
    """Every token (or ``user``'s), oldest first; secrets are never stored, so never listed."""
    q = select(_T)
    if user is not None:
        q = q.where(_T.c.user == user)
    rows = db.read(lambda c: c.execute(q.order_by(_T.c.created_at, _T.c.token_id)).all())
    return [_info(r) for r in rows]


def revoke_token(db: Database, token_id: str, *, actor: str = "admin") -> None:
    """Revoke a token: requests carrying it are refused from now on."""

    def run(conn: Connection) -> None:
        done = conn.execute(
            update(_T)
            .where(_T.c.token_id == token_id, _T.c.revoked_at.is_(None))
            .values(revoked_at=int(time.time() * 1000))
        ).rowcount
        if not done:
            raise NotFound(f"no active token with id {token_id!r}")

    db.write(
        run,
        actor=actor,
        action="token.revoke",
        object_type="token",
        object_id=token_id,
        payload={"revoked": token_id},
    )
