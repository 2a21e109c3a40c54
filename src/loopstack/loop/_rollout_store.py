"""Rollouts as rows of the ``rollouts`` table: every change one audited write.

A change names the status (and step) it expects the rollout to be in, so two actors
racing on one rollout (a controller's tick and an engineer's override) never both act:
the second gets ``Conflict`` and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update

from loopstack.errors import Conflict, NotFound
from loopstack.loop._rollout_plan import RolloutPlan
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema_loop import RolloutRow
from loopstack.tracking._entities import now_ms

__all__ = ["ACTIVE", "FINAL", "STATUSES", "UNDER_WAY", "Rollout", "RolloutStore"]

R = cast(Table, RolloutRow.__table__)

#: awaiting_approval: the registry's request is pending; shadow / canary: traffic on the
#: candidate, watched; paused: held by an engineer; the rest are final
STATUSES = (
    "awaiting_approval",
    "shadow",
    "canary",
    "paused",
    "promoted",
    "rolled_back",
    "failed",
)
ACTIVE = ("awaiting_approval", "shadow", "canary")
FINAL = ("promoted", "rolled_back", "failed")
#: not over yet: active, or paused by an engineer (one such rollout per endpoint)
UNDER_WAY = (*ACTIVE, "paused")


@dataclass
class Rollout:
    """A model version's way to the whole traffic of an endpoint, as it stands.

    ``watch`` holds the champion, the approval request, the breaches in a row per
    guardrail and the last measurement; ``step_index`` is the canary step the candidate
    is on (or, shadowing or awaiting approval, the one it goes to next).
    """

    rollout_id: int
    project_id: int
    endpoint: str
    model_name: str
    version: str
    status: str
    plan: RolloutPlan
    step_index: int
    step_started_at: int | None
    watch: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    created_by: str = ""
    created_at: int = 0
    updated_at: int = 0

    @property
    def weight(self) -> float:
        """The share of the traffic the candidate answers now (0 unless on a canary step;
        1 once promoted)."""
        if self.status == "promoted":
            return 1.0
        status = self.watch.get("paused_from") if self.status == "paused" else self.status
        if status == "canary" and self.step_index < len(self.plan.steps):
            return self.plan.steps[self.step_index].weight
        return 0.0

    @property
    def phase(self) -> str:
        """``shadow``, ``canary 25%``, or the status."""
        status = self.watch.get("paused_from") if self.status == "paused" else self.status
        if status == "canary":
            return f"canary {self.weight * 100:g}%"
        return str(status)

    def to_dict(self) -> dict[str, Any]:
        """The rollout as plain JSON-able values."""
        return {
            "rollout_id": self.rollout_id,
            "project_id": self.project_id,
            "endpoint": self.endpoint,
            "model_name": self.model_name,
            "version": self.version,
            "status": self.status,
            "phase": self.phase,
            "weight": self.weight,
            "plan": self.plan.to_dict(),
            "step_index": self.step_index,
            "step_started_at": self.step_started_at,
            "watch": self.watch,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, got: dict[str, Any]) -> Rollout:
        """The rollout a ``to_dict`` made."""
        keep = {k: v for k, v in got.items() if k not in ("phase", "weight")}
        return cls(**{**keep, "plan": RolloutPlan.from_dict(got["plan"])})


def _entity(row: Any) -> Rollout:
    return Rollout(
        row.rollout_id,
        row.project_id,
        row.endpoint,
        row.model_name,
        row.version,
        row.status,
        RolloutPlan.from_dict(json.loads(row.plan)),
        row.step_index,
        row.step_started_at,
        json.loads(row.watch or "{}"),
        row.reason,
        row.created_by,
        row.created_at,
        row.updated_at,
    )


class RolloutStore:
    """The rollouts of one project in the metadata DB, written as ``actor``."""

    def __init__(self, db: Database, *, project_id: int = 0, actor: str = "local") -> None:
        self.db = db
        self.project_id = project_id
        self.actor = actor

    def get(self, rollout_id: int) -> Rollout:
        """The rollout ``rollout_id``; ``NotFound`` if the project has none by that id."""

        if (
            isinstance(rollout_id, bool)
            or not isinstance(rollout_id, int)
            or not (0 < rollout_id < 2**31)
        ):  # no such id fits the column: refused before it reaches the database
            raise NotFound(f"no rollout with id {rollout_id!r}")

        def run(conn: Connection) -> Rollout:
            row = conn.execute(
                select(R).where(R.c.rollout_id == rollout_id, R.c.project_id == self.project_id)
            ).first()
            if row is None:
                raise NotFound(f"no rollout with id {rollout_id!r}")
            return _entity(row)

        return self.db.read(run)

    def list(
        self, *, endpoint: str | None = None, statuses: tuple[str, ...] | None = None
    ) -> list[Rollout]:
        """The project's rollouts (of one endpoint, in some statuses), newest first."""
        q = select(R).where(R.c.project_id == self.project_id)
        if endpoint is not None:
            q = q.where(R.c.endpoint == endpoint)
        if statuses is not None:
            q = q.where(R.c.status.in_(statuses))
        q = q.order_by(R.c.rollout_id.desc())
        return self.db.read(lambda conn: [_entity(r) for r in conn.execute(q)])

    def _audit(self, fn: Any, action: str, object_id: Any, payload: dict[str, Any]) -> Any:
        return self.db.write(
            fn,
            actor=self.actor,
            action=f"rollout.{action}",
            object_type="rollout",
            object_id=object_id,
            payload=payload,
            project_id=self.project_id,
        )

    def create(
        self,
        *,
        endpoint: str,
        model_name: str,
        version: str,
        plan: RolloutPlan,
        watch: dict[str, Any],
    ) -> Rollout:
        """A new rollout awaiting its approval (one active rollout per endpoint:
        ``Conflict`` while another is under way)."""
        now = now_ms()

        def run(conn: Connection) -> Rollout:
            busy = conn.execute(
                select(R.c.rollout_id, R.c.version, R.c.status).where(
                    R.c.project_id == self.project_id,
                    R.c.endpoint == endpoint,
                    R.c.status.in_(UNDER_WAY),
                )
            ).first()
            if busy is not None:
                raise Conflict(
                    f"endpoint {endpoint!r} already has rollout {busy.rollout_id} of version "
                    f"{busy.version} under way ({busy.status}): finish, promote or roll it "
                    "back first"
                )
            got = conn.execute(
                R.insert().values(
                    project_id=self.project_id,
                    endpoint=endpoint,
                    model_name=model_name,
                    version=version,
                    status="awaiting_approval",
                    plan=json.dumps(plan.to_dict(), sort_keys=True),
                    step_index=0,
                    step_started_at=None,
                    watch=json.dumps(watch, sort_keys=True, default=str),
                    reason=None,
                    created_by=self.actor,
                    created_at=now,
                    updated_at=now,
                )
            )
            rid = int(cast(Any, got.inserted_primary_key)[0])
            row = conn.execute(select(R).where(R.c.rollout_id == rid)).one()
            return _entity(row)

        payload = {
            "endpoint": endpoint,
            "model": model_name,
            "version": version,
            "plan": plan.to_dict(),
            "champion": watch.get("champion_version"),
            "approval_request": watch.get("approval_request"),
            "gates": watch.get("gates"),
        }
        return cast(Rollout, self._audit(run, "start", lambda r: str(r.rollout_id), payload))

    def change(
        self,
        current: Rollout,
        action: str,
        *,
        status: str | None = None,
        step_index: int | None = None,
        step_started_at: int | None = None,
        watch: dict[str, Any] | None = None,
        reason: str | None = None,
        payload: dict[str, Any] | None = None,
        audited: bool = True,
    ) -> Rollout:
        """Write a change of ``current`` (``Conflict`` if it moved on meanwhile), audited
        as ``rollout.<action>`` with ``payload`` (an evaluation with nothing to report
        may go unaudited: ``audited=False``)."""
        values: dict[str, Any] = {"updated_at": max(now_ms(), current.updated_at + 1)}
        if status is not None:
            values["status"] = status
        if step_index is not None:
            values["step_index"] = step_index
        if step_started_at is not None:
            values["step_started_at"] = step_started_at
        if watch is not None:
            values["watch"] = json.dumps(watch, sort_keys=True, default=str)
        if reason is not None:
            values["reason"] = reason

        def run(conn: Connection) -> Rollout:
            got = conn.execute(
                update(R)
                .where(
                    R.c.rollout_id == current.rollout_id,
                    R.c.project_id == self.project_id,
                    R.c.status == current.status,
                    R.c.updated_at == current.updated_at,
                )
                .values(**values)
            )
            if not got.rowcount:
                raise Conflict(
                    f"rollout {current.rollout_id} changed meanwhile (it was "
                    f"{current.status}); look at it again and retry"
                )
            return _entity(
                conn.execute(select(R).where(R.c.rollout_id == current.rollout_id)).one()
            )

        if not audited:
            return cast(Rollout, self.db.write_unaudited(run))
        body = {
            "endpoint": current.endpoint,
            "model": current.model_name,
            "version": current.version,
            "from": current.status,
            "to": status or current.status,
            **(payload or {}),
        }
        return cast(Rollout, self._audit(run, action, str(current.rollout_id), body))
