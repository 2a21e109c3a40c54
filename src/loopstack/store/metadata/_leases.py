"""Named leases in the metadata DB: who holds a name, until when.

A lease is the one way loopstack elects a single actor among processes that share a
database: the closed loop's controller (one active per database) and a project's
concurrent pipeline steps (N slots named ``steps:<project>:<i>``). Taking a lease is
one conditional write, so two processes racing for it cannot both win: the row is
inserted if absent, or taken over only if it has expired (or is already the caller's).
A holder renews before ``expires_at``; a holder that died simply stops renewing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from loopstack.errors import Invalid
from loopstack.store.metadata._database import Database
from loopstack.store.metadata.schema_loop import LeaseRow

__all__ = ["Lease", "acquire_lease", "lease_holder", "release_lease"]

_L = cast(Table, LeaseRow.__table__)


@dataclass(frozen=True)
class Lease:
    """A lease held by ``holder`` on ``name`` until ``expires_at`` (epoch seconds)."""

    name: str
    holder: str
    acquired_at: float
    expires_at: float


def _now_ms(now: float | None) -> int:
    return int(round((time.time() if now is None else now) * 1000))


def acquire_lease(
    db: Database, name: str, holder: str, ttl_s: float, *, now: float | None = None
) -> Lease | None:
    """Take or renew the lease ``name`` for ``holder`` for ``ttl_s`` seconds.

    Returns the lease when ``holder`` has it now (newly taken, renewed, or taken over
    from a holder whose lease expired), ``None`` when someone else holds it.

    >>> acquire_lease(db, "loop-controller", "host-1:4242", ttl_s=30)  # doctest: +SKIP
    Lease(name='loop-controller', holder='host-1:4242', ...)
    """
    if not name or not holder:
        raise Invalid(f"a lease needs a name and a holder; got {name!r} and {holder!r}")
    if not ttl_s > 0:
        raise Invalid(f"the lease's ttl_s must be a positive number of seconds; got {ttl_s!r}")
    at = _now_ms(now)
    until = at + max(1, int(round(ttl_s * 1000)))

    def take(conn: Connection) -> Lease | None:
        row = conn.execute(select(_L).where(_L.c.name == name)).first()
        if row is None:
            try:
                with conn.begin_nested():
                    fresh = {"name": name, "holder": holder, "acquired_at": at, "expires_at": until}
                    conn.execute(insert(_L).values(**fresh))
            except IntegrityError:  # another process inserted it first
                return None
            return Lease(name, holder, at / 1000, until / 1000)
        renew = row.holder == holder
        done = conn.execute(
            update(_L)
            .where(_L.c.name == name, or_(_L.c.holder == holder, _L.c.expires_at <= at))
            .values(
                holder=holder,
                acquired_at=row.acquired_at if renew else at,
                expires_at=until,
            )
        ).rowcount
        if not done:
            return None
        return Lease(name, holder, (row.acquired_at if renew else at) / 1000, until / 1000)

    return db.write_unaudited(take)


def release_lease(db: Database, name: str, holder: str) -> bool:
    """Give the lease up if ``holder`` has it; whether it did."""

    def drop(conn: Connection) -> bool:
        gone = conn.execute(delete(_L).where(_L.c.name == name, _L.c.holder == holder))
        return bool(gone.rowcount)

    return db.write_unaudited(drop)


def lease_holder(db: Database, name: str, *, now: float | None = None) -> Lease | None:
    """Who holds ``name`` now (an expired lease is held by nobody)."""
    at = _now_ms(now)
    row = db.read(
        lambda conn: conn.execute(select(_L).where(_L.c.name == name, _L.c.expires_at > at)).first()
    )
    if row is None:
        return None
    return Lease(row.name, row.holder, row.acquired_at / 1000, row.expires_at / 1000)
