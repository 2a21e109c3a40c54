"""The registry's native REST API: /api/v1/models, /model-versions, /approvals, /lineage.

``loopstack.registry.RestRegistry`` is its client; each route answers what the
``SqlRegistry`` method of the same name returns, as JSON.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from loopstack.auth import Role, role_of
from loopstack.errors import Forbidden
from loopstack.registry import SqlRegistry
from loopstack.server._security import authorize, principal_of, project_of
from loopstack.server.routes._deps import model_registry

router = APIRouter(prefix="/api/v1", tags=["registry"], dependencies=[Depends(authorize)])
Registry = SqlRegistry


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(_Body):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class VersionCreate(_Body):
    source: str
    files: dict[str, str] = Field(default_factory=dict)
    flavor: str = "unknown"
    signature: dict[str, Any] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)
    run_id: str | None = None
    code_version: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    onnx_max_abs_diff: float | None = None
    parents: list[tuple[str, int]] = Field(default_factory=list)
    create_model: bool = True


class ModelUpdate(_Body):
    description: str | None = None
    new_name: str | None = None


class VersionUpdate(_Body):
    description: str | None = None


class TagValue(_Body):
    value: str


class AliasSet(_Body):
    version: int
    force: bool = False
    reason: str = ""
    override: bool = False


class Promotion(_Body):
    version: int
    alias: str = "production"
    evidence: dict[str, Any] = Field(default_factory=dict)


class Decision(_Body):
    comment: str = ""
    force: bool = False


@router.get("/models", name="models_list")
def list_models(
    name_like: str | None = None,
    max_results: int = Query(1000, ge=1, le=100_000),
    reg: Registry = Depends(model_registry),
) -> dict:
    found = reg.search_registered_models(name_like=name_like, max_results=max_results)
    return {"models": [m.to_dict() for m in found]}


@router.post("/models", name="models_create")
def create_model(body: ModelCreate, reg: Registry = Depends(model_registry)) -> dict:
    return reg.create_registered_model(
        body.name, description=body.description, tags=body.tags
    ).to_dict()


@router.get("/models/{name}", name="models_get")
def get_model(name: str, reg: Registry = Depends(model_registry)) -> dict:
    return reg.get_registered_model(name).to_dict()


@router.patch("/models/{name}", name="models_update")
def update_model(name: str, body: ModelUpdate, reg: Registry = Depends(model_registry)) -> dict:
    return reg.update_registered_model(
        name, description=body.description, new_name=body.new_name
    ).to_dict()


@router.delete("/models/{name}", name="models_delete")
def delete_model(name: str, reg: Registry = Depends(model_registry)) -> dict:
    reg.delete_registered_model(name)
    return {}


@router.put("/models/{name}/tags/{key}", name="models_set_tag")
def set_model_tag(
    name: str, key: str, body: TagValue, reg: Registry = Depends(model_registry)
) -> dict:
    reg.set_registered_model_tag(name, key, body.value)
    return {}


@router.delete("/models/{name}/tags/{key}", name="models_delete_tag")
def delete_model_tag(name: str, key: str, reg: Registry = Depends(model_registry)) -> dict:
    reg.delete_registered_model_tag(name, key)
    return {}


@router.get("/model-versions", name="model_versions_search")
def search_versions(
    name: str | None = None,
    run_id: str | None = None,
    max_results: int = Query(1000, ge=1, le=100_000),
    reg: Registry = Depends(model_registry),
) -> dict:
    found = reg.search_model_versions(name=name, run_id=run_id, max_results=max_results)
    return {"versions": [v.to_dict() for v in found]}


@router.get("/models/{name}/versions", name="models_versions")
def list_versions(name: str, reg: Registry = Depends(model_registry)) -> dict:
    reg.get_registered_model(name)
    return {"versions": [v.to_dict() for v in reg.search_model_versions(name=name)]}


@router.post("/models/{name}/versions", name="models_version_create")
def create_version(name: str, body: VersionCreate, reg: Registry = Depends(model_registry)) -> dict:
    return reg.create_model_version(
        name,
        source=body.source,
        files=body.files,
        flavor=body.flavor,
        signature=body.signature,
        requirements=body.requirements,
        run_id=body.run_id,
        code_version=body.code_version,
        description=body.description,
        tags=body.tags,
        onnx_max_abs_diff=body.onnx_max_abs_diff,
        parents=body.parents,
        create_model=body.create_model,
    ).to_dict()


@router.get("/models/{name}/versions/{version}", name="models_version_get")
def get_version(
    name: str, version: str, verified: bool = False, reg: Registry = Depends(model_registry)
) -> dict:
    # verified: checked against the keyed audit event of its registration (load_model).
    got = reg.get_verified_model_version if verified else reg.get_model_version
    return got(name, version).to_dict()


@router.patch("/models/{name}/versions/{version}", name="models_version_update")
def update_version(
    name: str, version: str, body: VersionUpdate, reg: Registry = Depends(model_registry)
) -> dict:
    return reg.update_model_version(name, version, description=body.description).to_dict()


@router.put("/models/{name}/versions/{version}/tags/{key}", name="models_version_set_tag")
def set_version_tag(
    name: str, version: str, key: str, body: TagValue, reg: Registry = Depends(model_registry)
) -> dict:
    reg.set_model_version_tag(name, version, key, body.value)
    return {}


@router.delete("/models/{name}/versions/{version}/tags/{key}", name="models_version_delete_tag")
def delete_version_tag(
    name: str, version: str, key: str, reg: Registry = Depends(model_registry)
) -> dict:
    reg.delete_model_version_tag(name, version, key)
    return {}


@router.get("/models/{name}/aliases/{alias}", name="models_alias_get")
def get_alias(name: str, alias: str, reg: Registry = Depends(model_registry)) -> dict:
    return reg.get_version_by_alias(name, alias).to_dict()


def _check_override(request: Request) -> None:
    """The production override is an admin's, in this project."""
    role = role_of(request.app.state.stores.db, principal_of(request), project_of(request))
    if request.app.state.config.auth and (role is None or role < Role.ADMIN):
        raise Forbidden(
            "override=true moves a protected alias without approval: it needs "
            "the 'admin' role in this project"
        )


@router.put("/models/{name}/aliases/{alias}", name="models_set_alias")
def set_alias(
    name: str, alias: str, body: AliasSet, request: Request, reg: Registry = Depends(model_registry)
) -> dict:
    if body.override:
        _check_override(request)
    return asdict(
        reg.set_alias(
            name, alias, body.version, force=body.force, reason=body.reason, override=body.override
        )
    )


@router.delete("/models/{name}/aliases/{alias}", name="models_delete_alias")
def delete_alias(
    name: str,
    alias: str,
    request: Request,
    override: bool = False,
    reg: Registry = Depends(model_registry),
) -> dict:
    if override:
        _check_override(request)
    return asdict(reg.delete_alias(name, alias, override=override))


@router.get("/models/{name}/alias-history", name="models_alias_history")
def alias_history(
    name: str, alias: str | None = None, reg: Registry = Depends(model_registry)
) -> dict:
    return {"moves": [asdict(m) for m in reg.alias_history(name, alias)]}


@router.get("/models/{name}/versions/{version}/lineage", name="models_lineage")
def version_lineage(name: str, version: str, reg: Registry = Depends(model_registry)) -> dict:
    return reg.lineage(f"model_version:{name}/{version}").to_dict()


@router.get("/lineage", name="lineage_get")
def node_lineage(
    node: str = Query(..., description="run:<id>, dataset:<id>, model_version:<name>/<n>, ..."),
    reg: Registry = Depends(model_registry),
) -> dict:
    """The lineage of any node; a run or model version outside the project is NotFound."""
    return reg.lineage(node).to_dict()


@router.post("/models/{name}/promotions", name="models_promote")
def promote(name: str, body: Promotion, reg: Registry = Depends(model_registry)) -> dict:
    return reg.request_promotion(
        name, body.version, alias=body.alias, evidence=body.evidence
    ).to_dict()


@router.get("/approvals", name="approvals_list")
def list_approvals(
    name: str | None = None, state: str | None = None, reg: Registry = Depends(model_registry)
) -> dict:
    return {"requests": [r.to_dict() for r in reg.list_requests(name=name, state=state)]}


@router.post("/approvals/{request_id}/approve", name="approvals_approve")
def approve(request_id: str, body: Decision, reg: Registry = Depends(model_registry)) -> dict:
    return reg.decide(request_id, approve=True, comment=body.comment, force=body.force).to_dict()


@router.post("/approvals/{request_id}/reject", name="approvals_reject")
def reject(request_id: str, body: Decision, reg: Registry = Depends(model_registry)) -> dict:
    return reg.decide(request_id, approve=False, comment=body.comment).to_dict()
