"""The append-only, hash-chained audit log.

Each event's hash covers the previous event's hash and its own fields, so an
edit, deletion or insertion anywhere in the log breaks every later link;
``verify`` walks the chain and names the first broken one. An event made in a
project records it (and its hash covers it, so moving an event to another
project breaks the chain too); events of no one project, and those written
before projects were recorded, have none.

Administration (projects, their members and policy, users, tokens) is audited like
everything else; its events are told apart by their object type
(``ADMIN_OBJECT_TYPES``) so a reader can be shown a project's events without them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update

from loopstack.store.metadata._database import Database
from loopstack.store.metadata.schema import AuditEvent, AuditHead

__all__ = [
    "ADMIN_OBJECT_TYPES",
    "GENESIS_HASH",
    "RawDigest",
    "VerifyResult",
    "append",
    "digest_of",
    "events",
    "head_seq",
    "verify",
]

GENESIS_HASH = "0" * 64
_EVENTS = cast(Table, AuditEvent.__table__)
# The object types of administration events: project creation, members and policy, users,
# tokens. User and token events belong to no project; a project's own are its admins'.
ADMIN_OBJECT_TYPES = frozenset({"project", "user", "token"})


class RawDigest(str):
    """A payload already in canonical text form: hashed as is, skipping JSON encoding."""


def digest_of(payload: Any) -> str:
    """A stable sha256 of any JSON-able payload (keys sorted, non-JSON values as text)."""
    if isinstance(payload, RawDigest):
        return hashlib.sha256(payload.encode()).hexdigest()
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _link_hash(
    prev_hash: str,
    seq: int,
    ts: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    digest: str,
    project_id: int | None = None,
) -> str:
    fields = [prev_hash, str(seq), str(ts), actor, action, object_type, object_id, digest]
    if project_id is not None:  # absent from the hash of older, project-less events
        fields.append(f"project={project_id}")
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


# Built once: every write transaction runs these three, so they skip statement construction.
_READ_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT_EVENT = cast(Table, AuditEvent.__table__).insert()
_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: Any,
    project_id: int | None = None,
) -> int:
    """Append one event (made in ``project_id``, if any) inside the caller's transaction;
    returns its sequence number."""
    # Locking the head row serialises appenders on PostgreSQL; on SQLite the
    # write transaction (BEGIN IMMEDIATE) already does.
    head = conn.execute(_READ_HEAD).one()
    seq = head.seq + 1
    ts = int(time.time() * 1000)
    digest = digest_of(payload)
    link = _link_hash(head.hash, seq, ts, actor, action, object_type, object_id, digest, project_id)
    conn.execute(
        _INSERT_EVENT,
        {
            "seq": seq,
            "ts": ts,
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "digest": digest,
            "prev_hash": head.hash,
            "hash": link,
            "project_id": project_id,
        },
    )
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": link})
    return seq


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None


def verify(
    db: Database,
    *,
    project_id: int | None = None,
    include_admin: bool = True,
    batch: int = 10_000,
) -> VerifyResult:
    """Walk the whole chain; the result names the first broken link, if any.

    With ``project_id`` the walk still covers the whole chain (each link vouches for every
    later one), but the result speaks only of the events that project's reader may see
    (without administration events unless ``include_admin``): ``checked`` counts those, and
    a break at an event they may not see, or at one that is gone, is reported as
    ``ok=False`` with neither its sequence number nor its detail.

    >>> verify(db, project_id=3, include_admin=False)  # doctest: +SKIP
    VerifyResult(ok=True, checked=12, broken_seq=None, reason=None)
    """

    def seen(ev: Any) -> bool:
        if project_id is None:
            return True
        return ev.project_id == project_id and (
            include_admin or ev.object_type not in ADMIN_OBJECT_TYPES
        )

    def broken(checked: int, seq: int, reason: str, ev: Any | None) -> VerifyResult:
        if project_id is None or (ev is not None and seen(ev)):
            return VerifyResult(False, checked, seq, reason)
        return VerifyResult(False, checked, None, _BROKEN_ELSEWHERE)

    def run(conn: Connection) -> VerifyResult:
        prev_hash, expected_seq, walked, checked = GENESIS_HASH, 1, 0, 0
        last_seq = 0
        while True:
            rows = conn.execute(
                select(_EVENTS).where(_EVENTS.c.seq > last_seq).order_by(_EVENTS.c.seq).limit(batch)
            ).all()
            if not rows:
                break
            for ev in rows:
                if ev.seq != expected_seq:
                    return broken(
                        checked,
                        expected_seq,
                        f"event {expected_seq} is missing (next found: {ev.seq})",
                        None,
                    )
                if ev.prev_hash != prev_hash:
                    return broken(
                        checked,
                        ev.seq,
                        "its prev_hash does not match the hash of the event before",
                        ev,
                    )
                recomputed = _link_hash(
                    ev.prev_hash,
                    ev.seq,
                    ev.ts,
                    ev.actor,
                    ev.action,
                    ev.object_type,
                    ev.object_id,
                    ev.digest,
                    ev.project_id,
                )
                if recomputed != ev.hash:
                    return broken(
                        checked,
                        ev.seq,
                        "its contents do not match its hash (the row was edited)",
                        ev,
                    )
                prev_hash, expected_seq, walked = ev.hash, ev.seq + 1, walked + 1
                checked += seen(ev)
            last_seq = rows[-1].seq
        head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
        if head.seq != walked or head.hash != prev_hash:
            return broken(
                checked,
                walked + 1 if head.seq > walked else head.seq,
                f"the chain head says seq {head.seq} but the log ends at {walked} "
                "(events were deleted from the end)",
                None,
            )
        return VerifyResult(True, checked)

    return db.read(run)


_BROKEN_ELSEWHERE = (
    "the chain is broken at an event outside what you may read; a global admin's "
    "`loopstack audit verify` names it"
)


def events(
    db: Database,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    project_id: int | None = None,
    include_admin: bool = True,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The newest ``limit`` events, optionally for one object or of one project (and
    without administration events unless ``include_admin``), oldest first."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        q = select(_EVENTS)
        if project_id is not None:
            q = q.where(_EVENTS.c.project_id == project_id)
        if not include_admin:
            q = q.where(_EVENTS.c.object_type.not_in(sorted(ADMIN_OBJECT_TYPES)))
        if object_type:
            q = q.where(_EVENTS.c.object_type == object_type)
        if object_id:
            q = q.where(_EVENTS.c.object_id == object_id)
        rows = conn.execute(q.order_by(_EVENTS.c.seq.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in reversed(rows)]

    return db.read(run)


def head_seq(db: Database) -> int:
    """The sequence number of the newest event (0 for an empty log)."""
    from loopstack.store.metadata.schema import AuditHead

    return int(db.read(lambda c: c.execute(select(AuditHead.seq)).scalar()) or 0)
