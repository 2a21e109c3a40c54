"""The request gate: the token is checked and the body's size bounded before any byte of
the body is read.

FastAPI reads and parses a body before its dependencies run, and the bad-string guard
buffers JSON bodies before FastAPI: without this gate a 50 MB body with no token was
read, decoded and parsed (and answered 401 only then), lifting the server by hundreds
of MiB. Here, before the app sees the request:

- with auth on, a route that needs a token (every one but the public ones of
  ``_route_roles``) is answered 401 at once when the ``Authorization`` header names no
  valid token; a valid token's principal is left in ``request.state`` so that
  ``authorize`` does not verify it twice. The serving app checks more here: its
  ``app.state.access`` (an ``auth.ProjectAccess``) also refuses, 403, a token without
  read access to the project it serves, and remembers its answers for a few seconds;
- a body over the limit is answered 413, naming the limit and its setting: at once when
  ``Content-Length`` says so, else as soon as the bytes received pass it (a chunked
  body is counted, never buffered past the limit). JSON bodies are bounded by
  ``LOOPSTACK_MAX_BODY_MB``; uploads streamed to disk (artifacts, datasets) by the
  larger ``LOOPSTACK_MAX_UPLOAD_MB``.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopstack.config import MIB
from loopstack.errors import LoopstackError, TooLarge
from loopstack.server._http_errors import api_routes, error_response
from loopstack.server._route_roles import minimum_role
from loopstack.server._security import VERIFIED_PRINCIPAL, principal_from_header

__all__ = ["STREAMED_UPLOADS", "RequestGate", "answer_error"]

#: routes whose body is a file streamed to disk, bounded by LOOPSTACK_MAX_UPLOAD_MB
STREAMED_UPLOADS = frozenset({"artifacts_upload", "mlflow_artifacts_upload", "datasets_register"})
_CACHE_SIZE = 4096  # (method, path) -> route facts; paths with ids vary, so keep it bounded


class _Route:
    """What the gate needs to know of the route a request goes to."""

    __slots__ = ("public", "upload")

    def __init__(self, public: bool, upload: bool) -> None:
        self.public = public
        self.upload = upload


_BODYLESS = _Route(public=False, upload=False)  # with auth off, all a bodyless request needs


def _resolve(app: Any, scope: Scope) -> _Route:
    """The route ``scope`` goes to (or, for a method the path does not take, a route of
    the path): public, and an upload? No route at all: neither (auth is required)."""
    partial = None
    for route in api_routes(app):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            partial = route
            break
        if match is Match.PARTIAL and partial is None:
            partial = route
    name = str(getattr(partial, "name", "") or "")
    try:
        public = partial is not None and minimum_role(name) is None
    except KeyError:  # not an API route (none today): treat as needing a token
        public = False
    return _Route(public, name.removesuffix("_ajax") in STREAMED_UPLOADS)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _has_body(scope: Scope) -> bool:
    """HTTP/1.1: a request with neither header has no body (most reads): nothing to count."""
    length = _header(scope, b"content-length")
    return (length or "0").strip() != "0" or _header(scope, b"transfer-encoding") is not None


def _too_large(limit: int, setting: str, got: str) -> TooLarge:
    size = f"{limit / MIB:g} MiB" if limit >= MIB else f"{limit} bytes"
    return TooLarge(
        f"the request body must be at most {size} ({limit} bytes, set by {setting}); got {got}",
        field="body",
    )


class RequestGate:
    """ASGI middleware: authentication and the body's size limit, before the body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[tuple[str, str, str], _Route] = {}

    def _route(self, app: Any, scope: Scope) -> _Route:
        key = (scope.get("method", ""), scope.get("root_path", ""), scope.get("path", ""))
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= _CACHE_SIZE:
                self._routes.clear()
            found = self._routes[key] = _resolve(app, scope)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = scope["app"]  # the FastAPI app: Starlette sets it before its middleware
        config = app.state.config
        length = _header(scope, b"content-length")
        has_body = _has_body(scope)
        route = self._route(app, scope) if config.auth or has_body else _BODYLESS
        if route.upload:
            limit, setting = config.max_upload_bytes, "LOOPSTACK_MAX_UPLOAD_MB"
        else:
            limit, setting = config.max_body_bytes, "LOOPSTACK_MAX_BODY_MB"
        try:
            if config.auth and not route.public:
                header = _header(scope, b"authorization") or ""
                access = getattr(app.state, "access", None)  # the serving app's ProjectAccess
                if access is None:
                    principal = await anyio.to_thread.run_sync(
                        principal_from_header, app.state.stores.db, header
                    )
                else:  # a token seen within its TTL: no database read, no thread
                    principal = access.cached(header) or await anyio.to_thread.run_sync(
                        access.check, header
                    )
                scope.setdefault("state", {})[VERIFIED_PRINCIPAL] = principal
            if limit and length is not None and length.strip().isdigit() and int(length) > limit:
                raise _too_large(limit, setting, f"Content-Length {int(length)}")
        except LoopstackError as exc:
            await answer_error(scope, exc, send)  # the body is never read
            return
        if not limit or not has_body:
            await self.app(scope, receive, send)
            return
        await self._bounded(scope, receive, send, limit, setting)

    async def _bounded(
        self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str
    ) -> None:
        """Run the app with a ``receive`` that refuses the first byte past ``limit``."""
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit, setting, f"more than {limit} bytes (still coming)")
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge as exc:  # raised in a middleware reading the body, before any route
            if started:
                raise
            await answer_error(scope, exc, send)


async def answer_error(
    scope: Scope, exc: LoopstackError, send: Send, headers: dict[str, str] | None = None
) -> None:
    """Answer ``exc`` in the API's own shape (with ``headers``), without reading the
    request's body."""

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    response = error_response(Request(scope), exc)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if _has_body(scope):
        # the unread body is left on the wire: this connection cannot take another request
        response.headers["Connection"] = "close"
    await response(scope, no_body, send)
