"""API tokens: random secrets shown once, stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, select, update

from loopstack.errors import Invalid, NotFound
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import Token

__all__ = ["Principal", "TokenInfo", "create_token", "list_tokens", "revoke_token", "verify_token"]

_T = cast(Table, Token.__table__)
PREFIX = "lst_"


@dataclass(frozen=True)
class Principal:
    """Who is calling. Roles arrive with projects; ``user`` is what the audit log records."""

    user: str
    token_id: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    name: str
    user: str
    prefix: str
    created_at: int
    revoked_at: int | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, *, name: str, user: str,
                 actor: str = "admin") -> tuple[str, TokenInfo]:
    """Create a token for ``user``; returns (the secret, shown only now, and its record)."""
    import time

    if not name or not user:
        raise Invalid(f"a token needs a name and a user; got name={name!r}, user={user!r}",
                      field="name")
    secret = PREFIX + secrets.token_urlsafe(32)
    info = TokenInfo(uuid.uuid4().hex, name, user, secret[:10], int(time.time() * 1000), None)

    def run(conn: Connection) -> None:
        conn.execute(_T.insert().values(token_id=info.token_id, name=name, user=user,
                                        token_hash=_hash(secret), prefix=info.prefix,
                                        created_at=info.created_at))

    db.write(run, actor=actor, action="token.create", object_type="token",
             object_id=info.token_id, payload={"name": name, "user": user})
    return secret, info


def verify_token(db: Database, secret: str) -> Principal | None:
    """The principal a token stands for, or None if it is unknown or revoked."""
    if not secret.startswith(PREFIX):
        return None
    row = db.read(lambda c: c.execute(select(_T.c.token_id, _T.c.user, _T.c.revoked_at)
                                      .where(_T.c.token_hash == _hash(secret))).first())
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.user, row.token_id)


def list_tokens(db: Database) -> list[TokenInfo]:
    rows = db.read(lambda c: c.execute(select(_T).order_by(_T.c.created_at)).all())
    return [TokenInfo(r.token_id, r.name, r.user, r.prefix, r.created_at, r.revoked_at)
            for r in rows]


def revoke_token(db: Database, token_id: str, *, actor: str = "admin") -> None:
    import time

    def run(conn: Connection) -> None:
        done = conn.execute(update(_T).where(_T.c.token_id == token_id, _T.c.revoked_at.is_(None))
                            .values(revoked_at=int(time.time() * 1000))).rowcount
        if not done:
            raise NotFound(f"no active token with id {token_id!r}")

    db.write(run, actor=actor, action="token.revoke", object_type="token", object_id=token_id,
             payload={"revoked": token_id})
