"""The one place a request is authenticated, placed in a project, and authorised.

The project comes from the ``X-Loopstack-Project`` header (a name), else the
token's scope, else the ``default`` project. A caller with no role in that
project (or a token scoped to another) is told it does not exist (404), in the
same words as for a project that does not exist, naming only the projects the
caller can use, so projects stay invisible to outsiders. The route's minimum
role comes from ``_route_roles.ROUTE_ROLES``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from loopstack.auth import (
    Principal,
    Role,
    project_refusal,
    resolve_project,
    role_of,
    verify_token,
)
from loopstack.errors import Forbidden, Unauthenticated
from loopstack.server._route_roles import GLOBAL_ADMIN, minimum_role

__all__ = [
    "PROJECT_HEADER",
    "VERIFIED_PRINCIPAL",
    "authorize",
    "principal_from_header",
    "principal_of",
    "project_of",
]

PROJECT_HEADER = "x-loopstack-project"
#: the key of ``request.state`` under which the request gate leaves the token's principal
VERIFIED_PRINCIPAL = "verified_principal"
_ANONYMOUS = Principal("anonymous")


def principal_of(request: Request) -> Principal:
    return getattr(request.state, "principal", _ANONYMOUS)


def project_of(request: Request) -> int:
    """The id of the project this request acts in."""
    return int(getattr(request.state, "project_id", 0))


def _caller(request: Request, principal: Principal) -> dict[str, Any]:
    """Whose projects count: with auth off, every project is everyone's."""
    user = principal.user if request.app.state.config.auth else None
    return {"user": user, "scope": principal.project_id}


def _project_id(request: Request, principal: Principal) -> int:
    name = request.headers.get(PROJECT_HEADER)
    if not name:
        return principal.project_id if principal.project_id is not None else 0
    # a project that does not exist and one the caller may not see get the same answer
    return resolve_project(request.app.state.stores.db, name, **_caller(request, principal))


def principal_from_header(db: Any, header: str) -> Principal:
    """The principal an ``Authorization`` header's bearer token names; ``Unauthenticated``
    for no token, a malformed header, or an unknown or revoked token (a database read)."""
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            "this server requires a bearer token: send 'Authorization: Bearer "
            "<token>' (create one with `loopstack token create`)"
        )
    principal = verify_token(db, secret.strip())
    if principal is None:
        raise Unauthenticated("the bearer token is unknown, revoked, or its user is disabled")
    return principal


def _bearer(request: Request) -> Principal:
    # The request gate (server/_request_gate.py) checked the token before the body was read.
    checked = getattr(request.state, VERIFIED_PRINCIPAL, None)
    if isinstance(checked, Principal):
        return checked
    return principal_from_header(
        request.app.state.stores.db, request.headers.get("authorization", "")
    )


def authorize(request: Request) -> None:
    """FastAPI dependency on every route: authenticate, place in a project, check the role.

    A plain ``def``: FastAPI runs it in a worker thread, so its database reads never
    block the event loop.
    """
    route = request.scope.get("route")
    name = getattr(route, "name", "") or ""
    need = minimum_role(name)
    config = request.app.state.config
    if not config.auth:
        principal = Principal(config.actor, is_admin=True)
        request.state.principal = principal
        request.state.project_id = _project_id(request, principal)
        return
    if need is None:
        request.state.principal = _ANONYMOUS
        return
    principal = _bearer(request)
    request.state.principal = principal
    if need == GLOBAL_ADMIN:
        if not principal.is_admin or principal.project_id is not None:
            raise Forbidden(
                f"{request.method} {request.url.path} needs a global admin "
                "(a token of an admin user, not scoped to one project)"
            )
        request.state.project_id = _project_id(request, principal)
        return
    project_id = _project_id(request, principal)
    role = role_of(request.app.state.stores.db, principal, project_id)
    if role is None:
        label = request.headers.get(PROJECT_HEADER) or "default"
        raise project_refusal(request.app.state.stores.db, label, **_caller(request, principal))
    assert isinstance(need, Role)
    if role < need:
        raise Forbidden(
            f"{request.method} {request.url.path} needs the role {need.value!r} "
            f"or higher in this project; {principal.user!r} is {role.value!r}"
        )
    request.state.project_id = project_id
