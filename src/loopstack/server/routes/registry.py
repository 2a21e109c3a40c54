"""The registry's native REST API under /api/v1/models and /api/v1/approvals."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from loopstack.auth import Role, role_of
from loopstack.errors import Forbidden
from loopstack.registry import SqlRegistry
from loopstack.registry._lineage import lineage
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
def list_models(name_like: str | None = None, reg: Registry = Depends(model_registry)) -> dict:
    return {"models": [m.to_dict() for m in reg.search_registered_models(name_like=name_like)]}


@router.post("/models", name="models_create")
def create_model(body: ModelCreate, reg: Registry = Depends(model_registry)) -> dict:
    return reg.create_registered_model(
        body.name, description=body.description, tags=body.tags
    ).to_dict()


@router.get("/models/{name}", name="models_get")
def get_model(name: str, reg: Registry = Depends(model_registry)) -> dict:
    return reg.get_registered_model(name).to_dict()


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
    ).to_dict()


@router.get("/models/{name}/versions/{version}", name="models_version_get")
def get_version(name: str, version: str, reg: Registry = Depends(model_registry)) -> dict:
    return reg.get_model_version(name, version).to_dict()


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
def version_lineage(
    name: str, version: str, request: Request, reg: Registry = Depends(model_registry)
) -> dict:
    v = reg.get_model_version(name, version)  # NotFound outside the project
    return lineage(request.app.state.stores.db, v).to_dict()


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
