"""The server's edge: strings no store can hold, and booleans where numbers belong.

PostgreSQL's text columns refuse the NUL character (U+0000) and SQLite's driver cannot
encode a lone UTF-16 surrogate (``"\\ud800"``, which JSON can spell); bytes that are not
UTF-8 are no text at all. Each reached the database and came back as a 500. They are
refused here, once for every route, before any handler runs: in the path, the query
and a JSON body, naming the field, identically over SQLite and PostgreSQL (an
``Invalid``, rendered by the app's error handler as 422, or MLflow's
``INVALID_PARAMETER_VALUE`` 400 under the MLflow prefixes).

``WholeNumber`` is the integer type of request bodies: JSON's ``false`` is not 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Query
from pydantic import BeforeValidator, Field
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopstack.errors import Invalid

__all__ = ["BadStringGuard", "QueryWhole", "WholeNumber", "refuse_bad_strings"]


def _not_a_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer; got the boolean {json.dumps(value)}")
    return value


#: an integer field of a request body: a JSON boolean is refused, not read as 0 or 1, and
#: a number outside int64 is a 4xx here, not a database error (found on PostgreSQL)
WholeNumber = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=-(2**63), le=2**63 - 1)]
#: an integer query parameter: outside int64 is a 4xx, not an OverflowError in the store
#: (found by the fuzzer: ``?version=99999999999999999999``)
QueryWhole = Annotated[int, Query(ge=-(2**63), le=2**63 - 1)]


def _flaw(text: str) -> str | None:
    """What makes ``text`` unstorable, or None."""
    if "\x00" in text:
        return "contains the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone UTF-16 surrogate (U+{ord(text[exc.start]):04X})"
    return None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a decoded JSON value (keys included), with its dotted location."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            at = f"{where}.{key}" if where else str(key)
            yield at, key
            yield from _strings(item, at)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}.{i}" if where else str(i))


def _check(pairs: Iterator[tuple[str, str]], what: str) -> None:
    for field, text in pairs:
        flaw = _flaw(text)
        if flaw:
            raise Invalid(f"{what} {field!r} {flaw}; {_REFUSED}", field=field)


_REFUSED = "text must be valid Unicode without NUL characters"


def _decoded(raw: bytes, field: str, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(
            f"{what} {field!r} is not UTF-8 (byte 0x{raw[exc.start]:02x} at {exc.start}); "
            f"{_REFUSED}",
            field=field,
        ) from None


def refuse_bad_strings(scope: Scope, body: bytes) -> None:
    """Raise ``Invalid`` naming the first path segment, query parameter or body field
    that holds a NUL, a lone surrogate or bytes that are not UTF-8."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogatepass")
    path = _decoded(unquote_to_bytes(raw_path), "path", "the request")
    _check(iter([("path", path)]), "the request")
    query = scope.get("query_string", b"")
    if query:
        for pair in query.replace(b"+", b" ").split(b"&"):
            key, _, value = pair.partition(b"=")
            name = _decoded(unquote_to_bytes(key), "name", "query parameter")
            _check(iter([(name, name)]), "query parameter")
            text = _decoded(unquote_to_bytes(value), name, "query parameter")
            _check(iter([(name, text)]), "query parameter")
    if body and _is_json(scope):
        if body.isascii() and b"\\" not in body:
            # ASCII without an escape holds no lone surrogate and no bad UTF-8, and a raw
            # NUL is no valid JSON (the route's parsing refuses it): nothing to look for
            return
        if _content_type(scope) is None:
            try:  # no content type: FastAPI reads JSON, but an upload may be any bytes
                body.decode("utf-8")
            except UnicodeDecodeError:
                return  # not JSON: the route's own parsing answers it
        text = _decoded(body, "body", "the request")
        try:
            document = json.loads(text)
        except ValueError:
            return  # not JSON: the route's own parsing answers it
        _check(_strings(document, ""), "field")


def _content_type(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).lower()
    return None


def _is_json(scope: Scope) -> bool:
    kind = _content_type(scope)
    return kind is None or b"json" in kind  # FastAPI reads a body without a type as JSON


class BadStringGuard:
    """ASGI middleware running ``refuse_bad_strings`` on every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, replay = await _buffer(scope, receive)
        try:
            refuse_bad_strings(scope, body)
        except Invalid as exc:
            from loopstack.server._http_errors import error_response

            await error_response(Request(scope), exc)(scope, replay, send)
            return
        await self.app(scope, replay, send)


async def _buffer(scope: Scope, receive: Receive) -> tuple[bytes, Receive]:
    """A JSON body read whole (they are small); any other body is streamed untouched."""
    if not _is_json(scope) or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return b"", receive
    chunks: list[bytes] = []
    message: Message = {"type": "http.request", "body": b"", "more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"", _replay([message], receive)
        chunks.append(message.get("body", b""))
    body = b"".join(chunks)
    return body, _replay([{"type": "http.request", "body": body, "more_body": False}], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replayed() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replayed
