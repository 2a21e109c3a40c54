"""Deployments' native REST API: /api/v1/deployments.

``loopstack.serving.RestDeployments`` is its client; each route answers what the
``SqlDeployments`` method of the same name returns, as JSON (``/live`` answers
``monitoring.live_traffic``: the prediction log per minute). Reads are a viewer's,
changes an ml-engineer's (``_route_roles.py``); a production endpoint takes only
approved versions (the store refuses others), and ``force`` past that rule is an
admin's in the project.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from loopstack.auth import Role, role_of
from loopstack.errors import Forbidden
from loopstack.server._boundary import WholeNumber
from loopstack.server._security import authorize, principal_of, project_of
from loopstack.serving import SqlDeployments

router = APIRouter(
    prefix="/api/v1/deployments", tags=["deployments"], dependencies=[Depends(authorize)]
)


def deployment_store(request: Request) -> SqlDeployments:
    """The deployments of the caller's project, acting as the caller."""
    return SqlDeployments(
        request.app.state.stores, actor=principal_of(request).user, project_id=project_of(request)
    )


def _check_force(request: Request, force: bool) -> None:
    """``force`` puts an unapproved version on a production endpoint: an admin's only."""
    if not force or not request.app.state.config.auth:
        return
    role = role_of(request.app.state.stores.db, principal_of(request), project_of(request))
    if role is None or role < Role.ADMIN:
        raise Forbidden(
            "force=true deploys a version to production without its approval: it needs "
            "the 'admin' role in this project"
        )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Create(_Body):
    name: str
    model: str
    stage: str = "staging"
    force: bool = False


class ModelChange(_Body):
    model: str
    force: bool = False


class CanaryChange(ModelChange):
    weight: float


class AbArm(_Body):
    model: str
    weight: float


class AbChange(_Body):
    arms: dict[str, AbArm]
    force: bool = False


class BanditChange(_Body):
    arms: dict[str, str]
    strategy: str = "thompson"
    epsilon: float = 0.1
    force: bool = False


class Promote(_Body):
    arm: str | None = None
    force: bool = False


class Rollback(_Body):
    to: WholeNumber | None = None
    force: bool = False


class EnrichmentChange(_Body):
    enrichment: dict[str, Any] | None = Field(
        description="the enrichment settings (mode, defaults, max_age_s, timeout_s, "
        "breaker, features, online_url), or null to stop enriching"
    )


class Configure(_Body):
    options: dict[str, Any] = Field(
        description="serving options: max_batch_size, batch_latency_ms, max_queue (null removes)"
    )
    force: bool = False


class Reward(_Body):
    arm: str
    reward: float = Field(description="from 0 (failure) to 1 (success)")


Store = SqlDeployments


@router.get("", name="deployments_list")
def list_deployments(
    revisions_only: bool = False, store: Store = Depends(deployment_store)
) -> dict:
    """Every deployment of the project, or (``revisions_only``) each one's revision."""
    if revisions_only:
        return {"revisions": store.revisions()}
    return {"deployments": [d.to_dict() for d in store.list_deployments()]}


@router.post("", name="deployments_create")
def create(body: Create, request: Request, store: Store = Depends(deployment_store)) -> dict:
    _check_force(request, body.force)
    return store.create(body.name, body.model, stage=body.stage, force=body.force).to_dict()


@router.get("/{name}", name="deployments_get")
def get(name: str, store: Store = Depends(deployment_store)) -> dict:
    return store.get(name).to_dict()


@router.delete("/{name}", name="deployments_delete")
def delete(name: str, store: Store = Depends(deployment_store)) -> dict:
    store.delete(name)
    return {}


@router.get("/{name}/history", name="deployments_history")
def history(name: str, store: Store = Depends(deployment_store)) -> dict:
    return {"revisions": [r.to_dict() for r in store.history(name)]}


@router.post("/{name}/set", name="deployments_set")
def set_primary(
    name: str, body: ModelChange, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    return store.set(name, body.model, force=body.force).to_dict()


@router.post("/{name}/canary", name="deployments_canary")
def canary(
    name: str, body: CanaryChange, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    return store.canary(name, body.model, weight=body.weight, force=body.force).to_dict()


@router.post("/{name}/shadow", name="deployments_shadow")
def shadow(
    name: str, body: ModelChange, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    return store.shadow(name, body.model, force=body.force).to_dict()


@router.post("/{name}/ab", name="deployments_ab")
def ab(
    name: str, body: AbChange, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    arms = {n: (a.model, a.weight) for n, a in body.arms.items()}
    return store.ab(name, arms, force=body.force).to_dict()


@router.post("/{name}/bandit", name="deployments_bandit")
def bandit(
    name: str, body: BanditChange, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    return store.bandit(
        name, body.arms, strategy=body.strategy, epsilon=body.epsilon, force=body.force
    ).to_dict()


@router.post("/{name}/promote", name="deployments_promote")
def promote(
    name: str, body: Promote, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    return store.promote(name, arm=body.arm, force=body.force).to_dict()


@router.post("/{name}/rollback", name="deployments_rollback")
def rollback(
    name: str, body: Rollback, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    _check_force(request, body.force)
    return store.rollback(name, to=body.to, force=body.force).to_dict()


@router.post("/{name}/enrichment", name="deployments_enrichment")
def enrichment(name: str, body: EnrichmentChange, store: Store = Depends(deployment_store)) -> dict:
    return store.set_enrichment(name, body.enrichment).to_dict()


@router.post("/{name}/options", name="deployments_configure")
def configure(
    name: str, body: Configure, request: Request, store: Store = Depends(deployment_store)
) -> dict:
    """Set serving options (a new revision, the arms unchanged)."""
    _check_force(request, body.force)
    return store.configure(name, body.options, force=body.force).to_dict()


@router.post("/{name}/rewards", name="deployments_reward")
def reward(name: str, body: Reward, store: Store = Depends(deployment_store)) -> dict[str, Any]:
    return store.record_reward(name, body.arm, body.reward).to_dict()


@router.get("/{name}/bandit", name="deployments_bandit_state")
def bandit_state(name: str, store: Store = Depends(deployment_store)) -> dict:
    return {"arms": {a: s.to_dict() for a, s in store.bandit_state(name).items()}}


@router.get("/{name}/live", name="deployments_live")
def live(
    name: str, request: Request, minutes: int = 60, store: Store = Depends(deployment_store)
) -> dict:
    """The endpoint's last ``minutes`` minutes (1 to 1440, the current one included) from
    the prediction log, per minute and model version: requests, errors, p50 and p99
    latency, and a shadow version's agreement with the primary
    (``loopstack.monitoring.live_traffic``)."""
    from loopstack.monitoring import live_traffic
    from loopstack.store.events import EventLog

    store.get(name)  # NotFound for a deployment the caller's project does not have
    events = EventLog(request.app.state.stores, project_id=project_of(request))
    return live_traffic(name, minutes, events=events).to_dict()
