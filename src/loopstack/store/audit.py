"""The append-only, keyed hash-chained audit log.

Each event's hash is an HMAC-SHA256, under an audit key kept outside the database
(``store._audit_keys``), of the previous event's hash and its own fields, so an edit,
deletion or insertion anywhere in the log breaks every later link, and whoever edits
rows without the key cannot recompute the links. Each event records the id of its
key (rotated keys keep verifying the events made under them). Events written before
the chain was keyed keep their plain sha256 link and verify as *legacy*.

``verify`` walks the chain and names the first broken link; with anchors (signed
heads written outside the database by ``anchor``) it also catches a cut tail. An
event made in a project records it (and its hash covers it, so moving an event to
another project breaks the chain too).

Administration (projects, their members and policy, users, tokens) is audited like
everything else; its events are told apart by their object type
(``ADMIN_OBJECT_TYPES``) so a reader can be shown a project's events without them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update

from loopstack.errors import LoopstackError
from loopstack.store._audit_anchors import Anchor, anchor_mac_text, append_anchor, read_anchors
from loopstack.store._audit_keys import AuditKeyring
from loopstack.store.metadata._database import Database
from loopstack.store.metadata.schema import AuditEvent, AuditHead

if TYPE_CHECKING:
    from sqlalchemy import Row

__all__ = [
    "ADMIN_OBJECT_TYPES",
    "GENESIS_HASH",
    "AuditKeyring",
    "RawDigest",
    "VerifyResult",
    "anchor",
    "anchor_event",
    "append",
    "check_event",
    "digest_of",
    "events",
    "head_seq",
    "latest_event",
    "verify",
]

# The object types of administration events: project creation, members and policy, users,
# tokens. User and token events belong to no project; a project's own are its admins'.
ADMIN_OBJECT_TYPES = frozenset({"project", "user", "token"})
GENESIS_HASH = "0" * 64
_EVENTS = cast(Table, AuditEvent.__table__)


class RawDigest(str):
    """A payload already in canonical text form: hashed as is, skipping JSON encoding."""


def digest_of(payload: Any) -> str:
    """A stable sha256 of any JSON-able payload (keys sorted, non-JSON values as text)."""
    if isinstance(payload, RawDigest):
        return hashlib.sha256(payload.encode()).hexdigest()
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _fields(
    prev_hash: str,
    seq: int,
    ts: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    digest: str,
    project_id: int | None,
) -> list[str]:
    fields = [prev_hash, str(seq), str(ts), actor, action, object_type, object_id, digest]
    if project_id is not None:  # absent from the hash of older, project-less events
        fields.append(f"project={project_id}")
    return fields


def _link_hash(*parts: Any) -> str:
    """The plain sha256 link of a legacy (unkeyed) event (``parts`` as for ``_fields``)."""
    return _plain(_fields(*parts))


def _plain(fields: list[str]) -> str:
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def _keyed_text(fields: list[str], kid: str) -> str:
    return "\x1f".join([*fields, f"kid={kid}"])


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
    keys: AuditKeyring,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: Any,
    project_id: int | None = None,
) -> int:
    """Append one event (made in ``project_id``, if any), signed with the keyring's active
    key, inside the caller's transaction; returns its sequence number."""
    # Locking the head row serialises appenders on PostgreSQL; on SQLite the
    # write transaction (BEGIN IMMEDIATE) already does.
    head = conn.execute(_READ_HEAD).one()
    seq = head.seq + 1
    ts = int(time.time() * 1000)
    digest = digest_of(payload)
    kid = keys.active(log_length=head.seq)
    fields = _fields(head.hash, seq, ts, actor, action, object_type, object_id, digest, project_id)
    link = cast(str, keys.mac(kid, _keyed_text(fields, kid)))
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
            "key_id": kid,
        },
    )
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": link})
    return seq


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found: ``ok``, how many events it checked, the first broken one.

    ``legacy`` counts the unkeyed events (written before the chain was keyed) at the
    log's start; ``anchors`` the anchors checked against the log."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None
    legacy: int = 0
    anchors: int = 0


def check_event(ev: Any, keys: AuditKeyring) -> str | None:
    """Why event row ``ev``'s hash does not match its own fields (None: it does).

    A keyed event is checked under its key; an unknown key id is a failure naming it.
    A legacy event is checked with plain sha256, which anyone can recompute."""
    fields = _fields(
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
    if ev.key_id is None:
        if keys.legacy_until is not None and ev.seq > keys.legacy_until:
            return (
                f"it carries no key id, but the log held only {keys.legacy_until} unkeyed "
                f"events when it was keyed ({keys.source}): the event was written or "
                "rewritten without the key"
            )
        if _plain(fields) != ev.hash:
            return "its contents do not match its (unkeyed, legacy) hash: the row was edited"
        return None
    recomputed = keys.mac(ev.key_id, _keyed_text(fields, ev.key_id))
    if recomputed is None:
        return (
            f"it was signed with audit key {ev.key_id!r}, which is not among the known keys "
            f"({', '.join(keys.kids) or 'none'}) in {keys.source}: restore that key to verify it"
        )
    if recomputed != ev.hash:
        return (
            f"its hash does not match its fields under key {ev.key_id}: the row was edited "
            "(or its hash recomputed without the key)"
        )
    return None


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_anchor_macs(anchors: list[Anchor], keys: AuditKeyring, where: str) -> str | None:
    for a in anchors:
        mac = keys.mac(a.kid, anchor_mac_text(a.seq, a.hash, a.ts))
        if mac is None:
            return (
                f"anchor line {a.line} of {where} (seq {a.seq}) is signed with audit key "
                f"{a.kid!r}, which is not among the known keys in {keys.source}"
            )
        if mac != a.mac:
            return (
                f"anchor line {a.line} of {where} (seq {a.seq}) does not carry a valid MAC "
                f"under key {a.kid}: the anchor file was edited"
            )
    return None


def verify(
    db: Database,
    *,
    keys: AuditKeyring | None = None,
    anchors: str | None = None,
    project_id: int | None = None,
    include_admin: bool = True,
    batch: int = 10_000,
) -> VerifyResult:
    """Walk the whole chain, recomputing every link under its key; the result names the
    first broken link, if any.

    With ``anchors`` (a path or fsspec URL written by ``anchor``), every anchored event
    must still be there with the anchored hash: a cut or rewritten log is named.

    With ``project_id`` the walk still covers the whole chain (each link vouches for every
    later one), but the result speaks only of the events that project's reader may see
    (without administration events unless ``include_admin``): ``checked`` counts those, and
    a break at an event they may not see, or at one that is gone, is reported as
    ``ok=False`` with neither its sequence number nor its detail.

    >>> audit.verify(db, anchors="/secure/loopstack-anchors.jsonl").ok   # doctest: +SKIP
    >>> verify(db, project_id=3, include_admin=False)  # doctest: +SKIP
    """

    def seen(ev: Any) -> bool:
        if project_id is None:
            return True
        return ev.project_id == project_id and (
            include_admin or ev.object_type not in ADMIN_OBJECT_TYPES
        )

    keys = keys or db.audit_keys
    keys.reload()  # a key added since this process read the file verifies too
    pinned: dict[int, list[Anchor]] = {}
    anchor_list: list[Anchor] = []
    if anchors is not None:
        anchor_list = read_anchors(anchors)
        if not anchor_list:
            return VerifyResult(
                False,
                0,
                None,
                f"there are no anchors at {anchors} to check the log against (write one "
                "with `loopstack audit anchor`)",
            )
        bad = _check_anchor_macs(anchor_list, keys, anchors)
        if bad:
            return VerifyResult(False, 0, anchor_list[0].seq if anchor_list else None, bad)
        for a in anchor_list:
            pinned.setdefault(a.seq, []).append(a)

    def run(conn: Connection) -> VerifyResult:
        prev_hash, expected_seq, walked, legacy, keyed = GENESIS_HASH, 1, 0, 0, False
        last_seq, checked = 0, 0

        def broken(seq: int, reason: str, ev: Any | None = None) -> VerifyResult:
            if project_id is None or (ev is not None and seen(ev)):
                return VerifyResult(False, checked, seq, reason, legacy)
            return VerifyResult(False, checked, None, _BROKEN_ELSEWHERE, legacy)

        while True:
            rows = conn.execute(
                select(_EVENTS).where(_EVENTS.c.seq > last_seq).order_by(_EVENTS.c.seq).limit(batch)
            ).all()
            if not rows:
                break
            for ev in rows:
                if ev.seq != expected_seq:
                    return broken(
                        expected_seq, f"event {expected_seq} is missing (next found: {ev.seq})"
                    )
                if ev.prev_hash != prev_hash:
                    return broken(
                        ev.seq, "its prev_hash does not match the hash of the event before", ev
                    )
                if ev.key_id is None:
                    if keyed:
                        return broken(
                            ev.seq,
                            "it carries no key id but follows keyed events: a keyed event "
                            "was replaced by an unkeyed one",
                            ev,
                        )
                    legacy += 1
                else:
                    keyed = True
                reason = check_event(ev, keys)
                if reason:
                    return broken(ev.seq, reason, ev)
                for a in pinned.get(ev.seq, ()):
                    if a.hash != ev.hash:
                        return broken(
                            ev.seq,
                            f"its hash differs from the one anchored at {_when(a.ts)} (line "
                            f"{a.line} of {anchors}): the log was rewritten at or before seq "
                            f"{ev.seq}",
                            ev,
                        )
                prev_hash, expected_seq, walked = ev.hash, ev.seq + 1, walked + 1
                checked += seen(ev)
            last_seq = rows[-1].seq
        head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
        if head.seq != walked or head.hash != prev_hash:
            return broken(
                walked + 1 if head.seq > walked else head.seq,
                f"the chain head says seq {head.seq} but the log ends at {walked} "
                "(events were deleted from the end)",
            )
        if anchor_list:
            last = max(anchor_list, key=lambda a: a.seq)
            if last.seq > walked:
                return broken(
                    walked + 1,
                    f"the log was cut: an anchor at seq {last.seq} ({_when(last.ts)}, line "
                    f"{last.line} of {anchors}) but the log ends at {walked}",
                )
        return VerifyResult(True, checked, legacy=legacy, anchors=len(anchor_list))

    return db.read(run)


_BROKEN_ELSEWHERE = (
    "the chain is broken at an event outside what you may read; a global admin's "
    "`loopstack audit verify` names it"
)


def anchor(
    db: Database, *, to: str | None = None, keys: AuditKeyring | None = None
) -> dict[str, Any]:
    """Verify the chain, then append its signed head to ``to`` (a path or fsspec URL
    outside the database; default: the configured ``audit_anchor_path``); returns the
    anchor written. A broken chain is refused (``Conflict``), never anchored.

    >>> audit.anchor(db, to="s3://audit-bucket/loopstack/anchors.jsonl")   # doctest: +SKIP
    """
    from loopstack.errors import Conflict

    keys = keys or db.audit_keys
    if to is None:
        from loopstack.config import settings

        to = cast(str, settings().audit_anchor_path)
    result = verify(db, keys=keys)
    if not result.ok:
        raise Conflict(
            f"the audit chain is broken at seq {result.broken_seq}: {result.reason}; "
            "an anchor would vouch for it, so none was written"
        )
    head = db.read(lambda c: c.execute(select(AuditHead.seq, AuditHead.hash)).one())
    line = _signed(keys, int(head.seq), head.hash)
    append_anchor(to, line)
    return line


def _signed(keys: AuditKeyring, seq: int, hash_: str) -> dict[str, Any]:
    kid = keys.active(log_length=seq)
    ts = int(time.time() * 1000)
    mac = cast(str, keys.mac(kid, anchor_mac_text(seq, hash_, ts)))
    return {"seq": seq, "hash": hash_, "kid": kid, "ts": ts, "mac": mac}


def anchor_event(db: Database, seq: int, *, to: str) -> None:
    """After a write: anchor event ``seq`` (just committed by this process) to ``to``,
    without re-verifying the chain. A failure is logged, never raised: the write stands."""
    import logging

    keys = db.audit_keys
    try:
        q = select(_EVENTS.c.hash).where(_EVENTS.c.seq == seq)
        hash_ = db.read(lambda c: c.execute(q).scalar())
        if hash_ is not None:
            append_anchor(to, _signed(keys, seq, hash_))
    except LoopstackError as exc:
        logging.getLogger("loopstack.audit").warning("could not anchor event %s: %s", seq, exc)


def latest_event(
    db: Database | Connection,
    *,
    object_type: str,
    object_id: str,
    actions: tuple[str, ...],
    project_id: int | None,
) -> Row[Any] | None:
    """The newest event of one object in ``project_id`` whose action is one of ``actions``
    (one indexed lookup; ``db`` may be a connection inside a transaction)."""
    q = (
        select(_EVENTS)
        .where(
            _EVENTS.c.object_type == object_type,
            _EVENTS.c.object_id == object_id,
            _EVENTS.c.action.in_(actions),
        )
        .order_by(_EVENTS.c.seq.desc())
        .limit(1)
    )
    q = q.where(
        _EVENTS.c.project_id.is_(None) if project_id is None else _EVENTS.c.project_id == project_id
    )
    if isinstance(db, Connection):
        return db.execute(q).first()
    return db.read(lambda c: c.execute(q).first())


def events(
    db: Database,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    project_id: int | None = None,
    include_admin: bool = True,
    limit: int = 1000,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """The newest ``limit`` events, optionally for one object or of one project (and
    without administration events unless ``include_admin``), oldest first.

    ``before``: only events whose ``seq`` is below it (the next page back from a page
    whose oldest event is ``before``)."""

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
        if before is not None:
            q = q.where(_EVENTS.c.seq < before)
        rows = conn.execute(q.order_by(_EVENTS.c.seq.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in reversed(rows)]

    return db.read(run)


def head_seq(db: Database) -> int:
    """The sequence number of the newest event (0 for an empty log)."""
    from loopstack.store.metadata.schema import AuditHead

    return int(db.read(lambda c: c.execute(select(AuditHead.seq)).scalar()) or 0)
