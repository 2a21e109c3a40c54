"""Rollouts' native REST API: /api/v1/rollouts.

``loopstack.loop.Rollouts`` behind it, acting as the caller: reading is a viewer's;
starting, approving, the overrides (pause, resume, promote, rollback) and a tick are an
ml-engineer's (``_route_roles.py``); a forced promotion past the production rule is an
admin's. Every change is audited; ``/{id}/events`` lists a rollout's audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from loopstack.auth import role_of
from loopstack.loop import Rollouts
from loopstack.server._boundary import WholeNumber
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"], dependencies=[Depends(authorize)])


def rollouts_of(request: Request) -> Rollouts:
    """The rollouts of the caller's project, acting as the caller (with their role when
    auth is on)."""
    stores = request.app.state.stores
    principal, pid = principal_of(request), project_of(request)
    role = role_of(stores.db, principal, pid) if request.app.state.config.auth else None
    return Rollouts(stores, project_id=pid, actor=principal.user, role=role)


#: a rollout's id as the path names it (the column's range: a bigger one is no rollout)
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Start(_Body):
    endpoint: str
    model: str
    version: Annotated[WholeNumber, Field(ge=1, le=2**31 - 1)]
    plan: dict[str, Any] = Field(
        description="steps [{weight, bake_s}], shadow_s, guardrails [{metric, op, threshold}], "
        "breaches_to_rollback, interval_s, window_s, require_approval, metrics_url, min_requests"
    )
    evidence: dict[str, Any] | None = None
    force: bool = False
    reason: str = ""


class Approve(_Body):
    comment: str = ""


@router.get("", name="rollouts_list")
def list_rollouts(
    endpoint: str | None = None, active: bool = False, r: Rollouts = Depends(rollouts_of)
) -> dict:
    """The project's rollouts, newest first (of one endpoint; only those under way)."""
    return {"rollouts": [x.to_dict() for x in r.list(endpoint, active=active)]}


@router.post("", name="rollouts_start")
def start(body: Start, r: Rollouts = Depends(rollouts_of)) -> dict:
    """Start a rollout: it awaits the registry's approval unless none is needed."""
    return r.start(
        body.endpoint,
        body.model,
        body.version,
        body.plan,
        evidence=body.evidence,
        force=body.force,
        reason=body.reason,
    ).to_dict()


@router.post("/tick", name="rollouts_tick")
def tick(r: Rollouts = Depends(rollouts_of)) -> dict:
    """Move every rollout under way one step, as the loop's controller does."""
    return {"events": [e.to_dict() for e in r.tick()]}


@router.get("/{rollout_id}", name="rollouts_get")
def get(rollout_id: RolloutId, r: Rollouts = Depends(rollouts_of)) -> dict:
    return r.get(rollout_id).to_dict()


@router.get("/{rollout_id}/events", name="rollouts_events")
def events(rollout_id: RolloutId, r: Rollouts = Depends(rollouts_of)) -> dict:
    """The rollout's audit trail, oldest first."""
    return {"events": r.events(rollout_id)}


@router.post("/{rollout_id}/approve", name="rollouts_approve")
def approve(rollout_id: RolloutId, body: Approve, r: Rollouts = Depends(rollouts_of)) -> dict:
    return r.approve(rollout_id, comment=body.comment).to_dict()


@router.post("/{rollout_id}/pause", name="rollouts_pause")
def pause(rollout_id: RolloutId, r: Rollouts = Depends(rollouts_of)) -> dict:
    return r.pause(rollout_id).to_dict()


@router.post("/{rollout_id}/resume", name="rollouts_resume")
def resume(rollout_id: RolloutId, r: Rollouts = Depends(rollouts_of)) -> dict:
    return r.resume(rollout_id).to_dict()


@router.post("/{rollout_id}/promote", name="rollouts_promote")
def promote(rollout_id: RolloutId, r: Rollouts = Depends(rollouts_of)) -> dict:
    return r.force_promote(rollout_id).to_dict()


@router.post("/{rollout_id}/rollback", name="rollouts_rollback")
def rollback(rollout_id: RolloutId, r: Rollouts = Depends(rollouts_of)) -> dict:
    return r.force_rollback(rollout_id).to_dict()
