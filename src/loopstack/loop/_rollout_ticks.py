"""The controller's share of rollouts: each step moves the rollouts under way one tick,
so the loop carries a gated version through its canary to production (or back) by
itself, with no separate `loopstack rollout tick` process."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, select

from loopstack.errors import LoopstackError

__all__ = ["tick_rollouts"]


def tick_rollouts(
    stores: Any, project_id: int | None, actor: str, now: float
) -> list[tuple[str, str, str]]:
    """Tick the rollouts under way in ``project_id`` (every project when None); what
    happened, as (kind, endpoint, message). A project whose tick fails is reported as an
    ``error`` and the others still move."""
    from loopstack.loop._rollout import Rollouts
    from loopstack.loop._rollout_store import ACTIVE
    from loopstack.store.metadata.schema_loop import RolloutRow

    table = cast(Table, RolloutRow.__table__)
    q = select(table.c.project_id).where(table.c.status.in_(ACTIVE)).distinct()
    if project_id is not None:
        q = q.where(table.c.project_id == project_id)
    projects = [r[0] for r in stores.db.read(lambda conn: conn.execute(q).all())]
    out: list[tuple[str, str, str]] = []
    for pid in projects:
        try:
            events = Rollouts(stores, project_id=pid, actor=actor).tick(now)
        except LoopstackError as exc:  # one project's trouble does not stop the loop
            out.append(("error", "rollouts", str(exc)))
            continue
        for event in events:
            if event.kind == "evaluated":
                continue  # every interval: `loopstack rollout status` shows them
            detail = event.detail.get("reason") or event.detail.get("weight") or ""
            out.append(
                (f"rollout {event.kind}", event.endpoint, f"#{event.rollout_id} {detail}".rstrip())
            )
    return out
