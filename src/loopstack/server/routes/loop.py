"""The closed loop's native REST API: /api/v1/loop (triggers and what fired).

``loopstack.loop.TriggerStore`` behind it, acting as the caller: reading is a viewer's;
adding, removing, enabling, disabling and firing a trigger are an ml-engineer's
(``_route_roles.py``). A trigger's pipeline is resolved on the server's machine when it
is added (as the controller, which runs it, will import it): an entrypoint that does not
import there is refused. The controller itself (``loopstack loop run``) runs beside the
metadata store, not through the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from loopstack.loop import Trigger, TriggerStore, loop_status
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(prefix="/api/v1/loop", tags=["loop"], dependencies=[Depends(authorize)])

#: a trigger's name as the path names it (Trigger checks its characters)
Name = Annotated[str, Path(min_length=1, max_length=128)]


def trigger_store(request: Request) -> TriggerStore:
    """The triggers of the caller's project, acting as the caller."""
    return TriggerStore(
        request.app.state.stores, project_id=project_of(request), actor=principal_of(request).user
    )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddTrigger(_Body):
    name: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    pipeline: str = Field(max_length=1024, description="pkg.module:fn or file.py:fn")
    params: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="the kind's spec; drift, performance and kpi take an optional "
        "'cooldown' ('1h'): no other firing that long after one",
    )


class Fire(_Body):
    reason: str = Field("", max_length=1000)
    request_id: str | None = Field(
        None, max_length=64, description="a retried request with the same id fires once"
    )


@router.get("/triggers", name="loop_triggers")
def list_triggers(store: TriggerStore = Depends(trigger_store)) -> dict:
    """Every trigger of the project, by name: definition, on or off, what it has seen."""
    return {"triggers": [t.to_dict() for t in store.list()]}


@router.post("/triggers", name="loop_triggers_add")
def add_trigger(body: AddTrigger, store: TriggerStore = Depends(trigger_store)) -> dict:
    """Add a trigger (enabled); refused when its pipeline does not import on this server."""
    trigger = Trigger(body.name, body.kind, body.pipeline, body.params, body.spec)
    return store.add(trigger).to_dict()


@router.delete("/triggers/{name}", name="loop_triggers_remove")
def remove_trigger(name: Name, store: TriggerStore = Depends(trigger_store)) -> dict:
    """Delete a trigger and its firings (the audit log keeps them)."""
    store.remove(name)
    return {"removed": name}


@router.post("/triggers/{name}/fire", name="loop_triggers_fire")
def fire(name: Name, body: Fire, store: TriggerStore = Depends(trigger_store)) -> dict:
    """Fire a trigger now; the controller launches its pipeline. ``firing_id`` is None
    when this ``request_id`` fired it already. (Declared before the switch below, whose
    path it matches.)"""
    return {"firing_id": store.fire_manual(name, body.reason, request_id=body.request_id)}


@router.post("/triggers/{name}/{switch}", name="loop_triggers_switch")
def switch_trigger(
    name: Name,
    switch: Literal["enable", "disable"],
    store: TriggerStore = Depends(trigger_store),
) -> dict:
    """Turn a trigger on (``enable``) or off (``disable``: the controller stops evaluating
    it)."""
    return store.set_enabled(name, switch == "enable").to_dict()


@router.get("/status", name="loop_status")
def status(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 20,
    trigger: Annotated[str | None, Query(max_length=128)] = None,
) -> dict:
    """The latest firings, newest first: which trigger, when, why, the pipeline run it
    started and what that led to."""
    found = loop_status(
        request.app.state.stores, project_id=project_of(request), limit=limit, trigger=trigger
    )
    return {"firings": [f.to_dict() for f in found]}
