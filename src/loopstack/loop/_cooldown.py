"""Whether a trigger with a cooldown may fire now, from what is stored (so a restarted
controller holds it back as the one before it did).

A trigger with a ``cooldown`` is held back while its latest firing is younger than the
cooldown, while a firing of it is under way (pending or running), and while a rollout is
under way on its endpoint (on any endpoint of the project for a kpi trigger that names
none). Firings do not record the rollouts their pipelines start, so any rollout under way
on the endpoint counts: most often it is the one the last retraining started, and a
retraining beside it would race it anyway.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from loopstack.loop._firings import firings
from loopstack.loop._rollout_store import UNDER_WAY, RolloutStore
from loopstack.loop._trigger_store import StoredTrigger
from loopstack.loop._triggers import cooldown_s

__all__ = ["hold_reason"]


def _clock(at: float, now: float) -> str:
    shape = "%H:%M:%S" if at - now < 86400 else "%Y-%m-%d %H:%M:%S"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime(shape) + " UTC"


def hold_reason(db: Any, stored: StoredTrigger, now: float) -> str | None:
    """Why ``stored`` may not fire at ``now`` (epoch seconds): "cooling down until
    14:05:00 UTC", "firing #3 is still under way (running)", "rollout 2 (fraud version 4)
    is still under way on fraud (canary 25%)"; None when it may (or has no cooldown)."""
    seconds = cooldown_s(stored.trigger)
    if seconds is None:
        return None
    pid, name = stored.project_id, stored.name
    latest = firings(db, project_id=pid, trigger=name, limit=1)
    if latest:
        until = latest[0].fired_at / 1000 + seconds
        if now < until:
            return f"cooling down until {_clock(until, now)}"
    busy = firings(db, project_id=pid, trigger=name, statuses=("pending", "running"), limit=1)
    if busy:
        return f"firing #{busy[0].firing_id} is still under way ({busy[0].status})"
    endpoint = stored.trigger.spec.get("endpoint")
    store = RolloutStore(db, project_id=stored.project_id)
    for rollout in store.list(endpoint=endpoint, statuses=UNDER_WAY)[:1]:
        return (
            f"rollout {rollout.rollout_id} ({rollout.model_name} version {rollout.version}) "
            f"is still under way on {rollout.endpoint} ({rollout.phase})"
        )
    return None
