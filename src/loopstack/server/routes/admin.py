"""Administration under /api/v1: projects, members, users and tokens."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from loopstack import auth
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[Depends(authorize)])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(_Body):
    name: str
    description: str = ""


class MemberSet(_Body):
    user: str
    role: str


class UserCreate(_Body):
    name: str
    display_name: str = ""
    is_admin: bool = False


class TokenCreate(_Body):
    name: str
    user: str
    project: str | None = None


def _db(request: Request) -> Any:
    return request.app.state.stores.db


def _actor(request: Request) -> str:
    return principal_of(request).user


@router.get("/whoami", name="whoami")
def whoami(request: Request) -> dict:
    principal = principal_of(request)
    role = auth.role_of(_db(request), principal, project_of(request))
    return {
        "user": principal.user,
        "project_id": project_of(request),
        "role": role.value if role else None,
        "is_admin": principal.is_admin,
    }


@router.get("/projects", name="projects_list")
def list_projects(request: Request) -> dict:
    principal = principal_of(request)
    config = request.app.state.config
    projects = auth.list_projects(_db(request), user=principal.user if config.auth else None)
    if principal.project_id is not None:
        projects = [p for p in projects if p.project_id == principal.project_id]
    return {"projects": [asdict(p) for p in projects]}


@router.post("/projects", name="projects_create")
def create_project(body: ProjectCreate, request: Request) -> dict:
    return asdict(
        auth.create_project(_db(request), body.name, body.description, actor=_actor(request))
    )


@router.put("/projects/{project}/members", name="projects_add_member")
def add_member(project: str, body: MemberSet, request: Request) -> dict:
    return asdict(
        auth.add_member(_db(request), project, body.user, body.role, actor=_actor(request))
    )


@router.delete("/projects/{project}/members/{user}", name="projects_remove_member")
def remove_member(project: str, user: str, request: Request) -> dict:
    auth.remove_member(_db(request), project, user, actor=_actor(request))
    return {}


@router.put("/projects/{project}/policy", name="projects_set_policy")
def set_policy(project: str, body: dict[str, Any], request: Request) -> dict:
    return auth.set_policy(_db(request), project, body, actor=_actor(request)).model_dump()


@router.get("/users", name="users_list")
def list_users(request: Request) -> dict:
    return {"users": [asdict(u) for u in auth.list_users(_db(request))]}


@router.post("/users", name="users_create")
def create_user(body: UserCreate, request: Request) -> dict:
    return asdict(
        auth.create_user(
            _db(request),
            body.name,
            display_name=body.display_name,
            is_admin=body.is_admin,
            actor=_actor(request),
        )
    )


@router.post("/users/{name}/disable", name="users_disable")
def disable_user(name: str, request: Request) -> dict:
    auth.disable_user(_db(request), name, actor=_actor(request))
    return {}


@router.get("/tokens", name="tokens_list")
def list_tokens(request: Request) -> dict:
    return {"tokens": [asdict(t) for t in auth.list_tokens(_db(request))]}


@router.post("/tokens", name="tokens_create")
def create_token(body: TokenCreate, request: Request) -> dict:
    secret, info = auth.create_token(
        _db(request), name=body.name, user=body.user, project=body.project, actor=_actor(request)
    )
    return {"token": secret, **asdict(info)}


@router.delete("/tokens/{token_id}", name="tokens_revoke")
def revoke_token(token_id: str, request: Request) -> dict:
    auth.revoke_token(_db(request), token_id, actor=_actor(request))
    return {}
