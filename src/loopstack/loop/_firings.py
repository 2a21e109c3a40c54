"""Firings in the metadata DB: recorded once, claimed once, and what they led to.

A firing goes ``pending`` (recorded; the unique ``(trigger_id, dedup_key)`` index makes
a second recording of the same event fail) -> ``running`` (claimed by one controller,
which then launches the pipeline) -> ``done`` / ``failed`` / ``stopped`` (a gate said
no). Each change is a conditional update on the status it expects, audited.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import AlertEventRow
from loopstack.store.metadata.schema_loop import LoopFiringRow, LoopTriggerRow

__all__ = [
    "FiringView",
    "claim_firing",
    "finish_firing",
    "fired_alerts",
    "firings",
    "loop_status",
    "record_firing",
    "save_trigger_state",
    "set_firing_run",
    "touch_firing",
]

T = cast(Table, LoopTriggerRow.__table__)
F = cast(Table, LoopFiringRow.__table__)
E = cast(Table, AlertEventRow.__table__)

#: the statuses a firing ends in
FINAL = ("done", "failed", "stopped")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class FiringView:
    """One firing as ``loopstack loop status`` shows it: which trigger, when, why, and
    what it led to (times in epoch milliseconds)."""

    firing_id: int
    project_id: int
    trigger: str
    kind: str
    pipeline: str
    dedup_key: str
    fired_at: int
    reason: str
    status: str
    pipeline_run_uuid: str | None
    outcome: dict[str, Any]
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        """The firing as plain JSON-able data."""
        return dict(self.__dict__)


class _Duplicate(Exception):
    """The event was recorded already (by this or another controller)."""


def record_firing(
    db: Database,
    *,
    trigger_id: int,
    project_id: int,
    dedup_key: str,
    reason: str,
    state: dict[str, Any] | None,
    actor: str,
    at_ms: int | None = None,
) -> int | None:
    """Record a pending firing and the trigger's new ``state`` in one transaction; the
    firing's id, or None when that event was recorded already (nothing changes).
    ``at_ms`` is when the trigger saw the event (default now): the controller's clock,
    which a trigger's cooldown is measured on."""
    at = _now_ms() if at_ms is None else int(at_ms)

    def fn(conn: Connection) -> int:
        try:
            with conn.begin_nested():
                got = conn.execute(
                    insert(F).values(
                        project_id=project_id,
                        trigger_id=trigger_id,
                        dedup_key=dedup_key,
                        reason=reason,
                        status="pending",
                        outcome="{}",
                        fired_at=at,
                        updated_at=at,
                    )
                )
        except IntegrityError as exc:
            raise _Duplicate from exc
        if state is not None:
            conn.execute(update(T).where(T.c.trigger_id == trigger_id).values(state=_dumps(state)))
        key = got.inserted_primary_key
        return int(key[0]) if key else 0

    try:
        return db.write(
            fn,
            actor=actor,
            action="loop.firing.record",
            object_type="loop_firing",
            object_id=lambda fid: str(fid),
            payload={"trigger_id": trigger_id, "dedup_key": dedup_key, "reason": reason},
            project_id=project_id,
        )
    except _Duplicate:
        if state is not None:  # the event is old news; what was seen still moves on
            save_trigger_state(db, trigger_id, state)
        return None


def save_trigger_state(db: Database, trigger_id: int, state: dict[str, Any]) -> None:
    """Keep what a trigger has seen (not audited: no definition changes)."""
    db.write_unaudited(
        lambda conn: conn.execute(
            update(T).where(T.c.trigger_id == trigger_id).values(state=_dumps(state))
        )
    )


def _change(
    db: Database,
    firing_id: int,
    expect: tuple[str, ...],
    values: dict[str, Any],
    *,
    actor: str,
    action: str,
    project_id: int | None = None,
    updated_at: int | None = None,
) -> bool:
    def fn(conn: Connection) -> bool:
        q = update(F).where(F.c.firing_id == firing_id, F.c.status.in_(expect))
        if updated_at is not None:  # unchanged since the caller read it
            q = q.where(F.c.updated_at == updated_at)
        return bool(conn.execute(q.values(**values, updated_at=_now_ms())).rowcount)

    shown = {k: (json.loads(v) if k == "outcome" else v) for k, v in values.items()}
    return db.write(
        fn,
        actor=actor,
        action=action,
        object_type="loop_firing",
        object_id=str(firing_id),
        payload=shown,
        project_id=project_id,
    )


def claim_firing(
    db: Database,
    firing: FiringView,
    outcome: dict[str, Any],
    *,
    actor: str,
    expect: str = "pending",
) -> bool:
    """Move a firing from ``expect`` to running with ``outcome`` (who launches it, when);
    whether this caller got it. Taking over a running firing also needs it unchanged
    since ``firing`` was read (its heartbeat stopped)."""
    return _change(
        db,
        firing.firing_id,
        (expect,),
        {"status": "running", "outcome": _dumps(outcome)},
        actor=actor,
        action="loop.firing.claim",
        project_id=firing.project_id,
        updated_at=firing.updated_at if expect == "running" else None,
    )


def touch_firing(db: Database, firing_id: int) -> None:
    """The heartbeat of a running firing: its launcher is alive (not audited)."""
    db.write_unaudited(
        lambda conn: conn.execute(
            update(F)
            .where(F.c.firing_id == firing_id, F.c.status == "running")
            .values(updated_at=_now_ms())
        )
    )


def set_firing_run(
    db: Database, firing: FiringView, run_uuid: str, outcome: dict[str, Any], *, actor: str
) -> bool:
    """Record the pipeline run a running firing launched."""
    return _change(
        db,
        firing.firing_id,
        ("running",),
        {"pipeline_run_uuid": run_uuid, "outcome": _dumps(outcome)},
        actor=actor,
        action="loop.firing.launch",
        project_id=firing.project_id,
    )


def finish_firing(
    db: Database,
    firing: FiringView,
    status: str,
    outcome: dict[str, Any],
    *,
    actor: str,
    run_uuid: str | None = None,
) -> bool:
    """End a running firing as done, failed or stopped, with what it led to."""
    values: dict[str, Any] = {"status": status, "outcome": _dumps(outcome)}
    if run_uuid is not None:
        values["pipeline_run_uuid"] = run_uuid
    return _change(
        db,
        firing.firing_id,
        ("running",),
        values,
        actor=actor,
        action=f"loop.firing.{status}",
        project_id=firing.project_id,
    )


def _view(row: Any) -> FiringView:
    return FiringView(
        firing_id=int(row.firing_id),
        project_id=int(row.project_id),
        trigger=row.name,
        kind=row.kind,
        pipeline=row.pipeline,
        dedup_key=row.dedup_key,
        fired_at=int(row.fired_at),
        reason=row.reason,
        status=row.status,
        pipeline_run_uuid=row.pipeline_run_uuid,
        outcome=json.loads(row.outcome or "{}"),
        updated_at=int(row.updated_at),
    )


def firings(
    db: Database,
    *,
    project_id: int | None = None,
    statuses: tuple[str, ...] | None = None,
    trigger: str | None = None,
    limit: int | None = None,
    newest_first: bool = True,
) -> list[FiringView]:
    """Firings joined with their trigger, filtered (``project_id`` None: every project)."""

    def fn(conn: Connection) -> list[Any]:
        q = select(F, T.c.name, T.c.kind, T.c.pipeline).join(T, T.c.trigger_id == F.c.trigger_id)
        if project_id is not None:
            q = q.where(F.c.project_id == project_id)
        if statuses is not None:
            q = q.where(F.c.status.in_(statuses))
        if trigger is not None:
            q = q.where(T.c.name == trigger)
        order = (F.c.firing_id.desc(),) if newest_first else (F.c.firing_id,)
        q = q.order_by(*order)
        if limit is not None:
            q = q.limit(limit)
        return list(conn.execute(q).all())

    return [_view(r) for r in db.read(fn)]


def loop_status(
    stores: Any, project_id: int = 0, limit: int = 20, *, trigger: str | None = None
) -> list[FiringView]:
    """The latest ``limit`` firings of the project (of one ``trigger``, if named), newest
    first: trigger, when, why, status, the pipeline run it started and its outcome.

    >>> [f.reason for f in loop_status(open_stores())]   # doctest: +SKIP
    ['drift_share 0.42 > 0.30 on fraud over 1h']
    """
    from loopstack.errors import Invalid

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise Invalid(f"the 'limit' parameter must be an integer >= 1; got {limit!r} instead")
    return firings(stores.db, project_id=project_id, trigger=trigger, limit=limit)


def fired_alerts(
    db: Database, project_id: int, rule: str, *, after_id: int = 0
) -> list[dict[str, Any]]:
    """The alert rule's ``fired`` events with an id above ``after_id``, oldest first."""

    def fn(conn: Connection) -> list[Any]:
        q = select(E).where(
            E.c.project_id == project_id, E.c.rule == rule, E.c.kind == "fired", E.c.id > after_id
        )
        return list(conn.execute(q.order_by(E.c.id)).all())

    return [
        {
            "id": int(r.id),
            "metric": r.metric,
            "value": float(r.value),
            "threshold": float(r.threshold),
            "comparison": r.comparison,
            "at": r.at / 1000.0,
        }
        for r in db.read(fn)
    ]


def last_alert_id(db: Database, project_id: int, rule: str) -> int:
    """The newest alert event id of ``rule`` (0 when none): a new alert trigger's start."""
    from sqlalchemy import func

    q = select(func.max(E.c.id)).where(E.c.project_id == project_id, E.c.rule == rule)
    return int(db.read(lambda conn: conn.execute(q).scalar()) or 0)
