"""The one place a request is authenticated and authorised.

Every route's minimum permission is declared in ``ROUTE_PERMISSIONS`` (by
route name); routes not listed default by method (GET/HEAD -> read, others ->
write). The role matrix of a later issue plugs into ``authorize``.
"""

from __future__ import annotations

from fastapi import Request

from loopstack.auth import Principal, verify_token
from loopstack.errors import Forbidden, Unauthenticated

__all__ = ["PUBLIC_ROUTES", "ROUTE_PERMISSIONS", "authorize", "principal_of"]

#: routes anyone may call, even with LOOPSTACK_AUTH=on
PUBLIC_ROUTES = frozenset({"health"})
#: route name -> minimum permission ("read" < "write" < "admin")
ROUTE_PERMISSIONS: dict[str, str] = {
    "metrics": "read",
    "audit_verify": "read",
    "audit_events": "read",
}
_LEVELS = {"read": 0, "write": 1, "admin": 2}
_ANONYMOUS = Principal("anonymous")


def required_permission(route_name: str, method: str) -> str:
    default = "read" if method in ("GET", "HEAD") else "write"
    return ROUTE_PERMISSIONS.get(route_name, default)


def _granted(principal: Principal) -> str:
    # Until roles exist, every valid token may do everything but admin work.
    return "write"


def principal_of(request: Request) -> Principal:
    return getattr(request.state, "principal", _ANONYMOUS)


async def authorize(request: Request) -> None:
    """FastAPI dependency on every router: authenticate, then check the route's permission."""
    route = request.scope.get("route")
    name = getattr(route, "name", "") or ""
    config = request.app.state.config
    if not config.auth:
        request.state.principal = Principal(config.actor)
        return
    if name in PUBLIC_ROUTES:
        request.state.principal = _ANONYMOUS
        return
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise Unauthenticated("this server requires a bearer token: send 'Authorization: Bearer "
                              "<token>' (create one with `loopstack token create`)")
    principal = verify_token(request.app.state.stores.db, secret.strip())
    if principal is None:
        raise Unauthenticated("the bearer token is unknown or revoked")
    need = required_permission(name, request.method)
    if _LEVELS[_granted(principal)] < _LEVELS[need]:
        raise Forbidden(f"{request.method} {request.url.path} needs the {need!r} permission")
    request.state.principal = principal
