"""Triggers persisted in the metadata DB (``loop_triggers``), with what each has seen.

Adding a trigger refuses a pipeline entrypoint that does not resolve, so a typo is
found when the trigger is defined, not at 2 a.m. when it fires. Every change is
audited (``Database.write``).
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.loop._firings import FiringView, firings, last_alert_id, record_firing
from loopstack.loop._triggers import Trigger
from loopstack.store import Stores
from loopstack.store.metadata.schema_loop import LoopFiringRow, LoopTriggerRow

__all__ = ["StoredTrigger", "TriggerStore"]

T = cast(Table, LoopTriggerRow.__table__)
F = cast(Table, LoopFiringRow.__table__)


def _resolve_pipeline(entrypoint: str) -> Any:
    """The pipeline object at ``entrypoint``; Invalid (naming what is wrong) when it does
    not resolve to a loopstack pipeline."""
    from loopstack.errors import NotFound
    from loopstack.pipelines import load_entrypoint

    try:
        return load_entrypoint(entrypoint)
    except (Invalid, NotFound) as exc:
        raise Invalid(
            f"the pipeline {entrypoint!r} does not resolve: {exc.message}", field="pipeline"
        ) from exc


@dataclass(frozen=True)
class StoredTrigger:
    """A trigger as stored: its definition, whether it is on, and what it has seen."""

    trigger_id: int
    project_id: int
    trigger: Trigger
    enabled: bool
    state: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""
    created_at: int = 0
    updated_at: int = 0

    @property
    def name(self) -> str:
        """The trigger's name."""
        return self.trigger.name

    def to_dict(self) -> dict[str, Any]:
        """The stored trigger as plain JSON-able data."""
        return {
            "trigger_id": self.trigger_id,
            **self.trigger.to_dict(),
            "enabled": self.enabled,
            "state": self.state,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


def _stored(row: Any) -> StoredTrigger:
    trigger = Trigger(
        row.name, row.kind, row.pipeline, json.loads(row.params), json.loads(row.spec)
    )
    return StoredTrigger(
        int(row.trigger_id),
        int(row.project_id),
        trigger,
        bool(row.enabled),
        json.loads(row.state or "{}"),
        row.created_by,
        int(row.created_at),
        int(row.updated_at),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Switches:
    """``enable`` and ``disable`` over a ``set_enabled`` (the store's and its REST client's)."""

    def set_enabled(self, name: str, enabled: bool) -> StoredTrigger:
        raise NotImplementedError

    def enable(self, name: str) -> StoredTrigger:
        """Turn the trigger on."""
        return self.set_enabled(name, True)

    def disable(self, name: str) -> StoredTrigger:
        """Turn the trigger off."""
        return self.set_enabled(name, False)


class TriggerStore(Switches):
    """The triggers of one project, acting as ``actor``.

    >>> store = TriggerStore(open_stores(), actor="alice")             # doctest: +SKIP
    >>> store.add(Trigger("new-data", "dataset", "jobs.train:training",
    ...                   spec={"dataset": "transactions"}))          # doctest: +SKIP
    """

    def __init__(self, stores: Stores, project_id: int = 0, actor: str = "local") -> None:
        self.stores = stores
        self.db = stores.db
        self.project_id = project_id
        self.actor = actor

    def _baseline(self, trigger: Trigger) -> dict[str, Any]:
        """What a new trigger has already seen: events before it was defined never fire it."""
        if trigger.kind == "dataset":
            from loopstack.data import DatasetStore

            versions = DatasetStore(self.stores, project_id=self.project_id).list(
                trigger.spec["dataset"]
            )
            return {"last_version": max((v.version for v in versions), default=0)}
        if trigger.kind == "alert":
            return {"last_event_id": last_alert_id(self.db, self.project_id, trigger.spec["rule"])}
        return {}

    def add(self, trigger: Trigger) -> StoredTrigger:
        """Store ``trigger`` (enabled). Invalid when its pipeline does not resolve,
        Conflict when the project has a trigger of that name. A ``file.py:attr``
        pipeline is stored with the file's absolute path."""
        if not isinstance(trigger, Trigger):
            raise Invalid(f"add() takes a Trigger; got {type(trigger).__name__} instead")
        _resolve_pipeline(trigger.pipeline)
        target, _, attr = trigger.pipeline.rpartition(":")
        if target.endswith(".py"):  # the controller may run from another directory
            from pathlib import Path

            absolute = f"{Path(target).resolve()}:{attr}"
            trigger = Trigger(trigger.name, trigger.kind, absolute, trigger.params, trigger.spec)
        state = self._baseline(trigger)
        at = int(time.time() * 1000)
        values = {
            "project_id": self.project_id,
            "name": trigger.name,
            "kind": trigger.kind,
            "spec": _dumps(trigger.spec),
            "pipeline": trigger.pipeline,
            "params": _dumps(trigger.params),
            "enabled": True,
            "state": _dumps(state),
            "created_by": self.actor,
            "created_at": at,
            "updated_at": at,
        }

        def fn(conn: Connection) -> int:
            key = conn.execute(insert(T).values(**values)).inserted_primary_key
            return int(key[0]) if key else 0

        try:
            self.db.write(
                fn,
                actor=self.actor,
                action="loop.trigger.add",
                object_type="loop_trigger",
                object_id=trigger.name,
                payload=trigger.to_dict(),
                project_id=self.project_id,
            )
        except IntegrityError as exc:
            raise Conflict(
                f"a trigger named {trigger.name!r} exists already in this project; "
                "remove it first or pick another name"
            ) from exc
        return self.get(trigger.name)

    def _row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(
            select(T).where(T.c.project_id == self.project_id, T.c.name == name)
        ).first()
        if row is None:
            raise NotFound(f"no trigger named {name!r} in this project")
        return row

    def get(self, name: str) -> StoredTrigger:
        """The trigger ``name``; NotFound if there is none."""
        return _stored(self.db.read(lambda conn: self._row(conn, name)))

    def list(self) -> list[StoredTrigger]:
        """Every trigger of the project, by name."""
        q = select(T).where(T.c.project_id == self.project_id).order_by(T.c.name)
        return [_stored(r) for r in self.db.read(lambda conn: conn.execute(q).all())]

    def remove(self, name: str) -> None:
        """Delete the trigger and its firings (the audit log keeps what happened)."""

        def fn(conn: Connection) -> None:
            row = self._row(conn, name)
            conn.execute(delete(F).where(F.c.trigger_id == row.trigger_id))
            conn.execute(delete(T).where(T.c.trigger_id == row.trigger_id))

        self.db.write(
            fn,
            actor=self.actor,
            action="loop.trigger.remove",
            object_type="loop_trigger",
            object_id=name,
            payload={"name": name},
            project_id=self.project_id,
        )

    def set_enabled(self, name: str, enabled: bool) -> StoredTrigger:
        """Turn the trigger on or off (a disabled trigger is not evaluated)."""

        def fn(conn: Connection) -> None:
            row = self._row(conn, name)
            conn.execute(
                update(T)
                .where(T.c.trigger_id == row.trigger_id)
                .values(enabled=enabled, updated_at=int(time.time() * 1000))
            )

        self.db.write(
            fn,
            actor=self.actor,
            action="loop.trigger.enable" if enabled else "loop.trigger.disable",
            object_type="loop_trigger",
            object_id=name,
            payload={"name": name, "enabled": enabled},
            project_id=self.project_id,
        )
        return self.get(name)

    def fire_manual(
        self, name: str, reason: str = "", *, request_id: str | None = None
    ) -> int | None:
        """Record a firing of ``name`` now (any kind); the controller launches it.

        ``request_id`` makes a retried request fire once (default: a fresh one). The
        firing's id, or None when that request was recorded already."""
        stored = self.get(name)
        rid = request_id or uuid.uuid4().hex
        why = reason or f"fired by hand by {self.actor}"
        return record_firing(
            self.db,
            trigger_id=stored.trigger_id,
            project_id=self.project_id,
            dedup_key=f"manual-{rid}",
            reason=why,
            state=None,
            actor=self.actor,
        )

    def firings(self, name: str | None = None, limit: int = 50) -> builtins.list[FiringView]:
        """The project's firings (of one trigger, if named), newest first."""
        return firings(self.db, project_id=self.project_id, trigger=name, limit=limit)
