"""The one place that decides local or remote, and the one HTTP client every REST store uses.

A tracking URI of ``http(s)://...`` means "through a loopstack server"; anything
else (unset, or a database URL) means "straight to the metadata store". Every
domain (tracking, registry, datasets, features, audit), the CLI and later the
serving and UI code ask :func:`server_url` and, when it answers a URL, talk to the
server through :class:`HttpClient`:

- the bearer token and the project header go on every request;
- a 429 or 503 (and a connection that fails) is retried with exponential backoff,
  honouring ``Retry-After``;
- an error answer comes back as the same :class:`~loopstack.errors.LoopstackError`
  subclass the server raised, with the server's message and field.

>>> client = HttpClient.shared("http://127.0.0.1:8080", token="ls_...")
>>> client.call("GET", "/experiments", params={"max_results": 10})
"""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from loopstack import errors

if TYPE_CHECKING:
    from loopstack.config import Settings

__all__ = [
    "PROJECT_HEADER",
    "HttpClient",
    "close_shared",
    "error_from_response",
    "local_config",
    "server_url",
]

PROJECT_HEADER = "X-Loopstack-Project"
_RETRY_STATUSES = frozenset({429, 503})
_BY_NAME: dict[str, type[errors.LoopstackError]] = {
    name: cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, errors.LoopstackError)
}
_BY_STATUS: dict[int, type[errors.LoopstackError]] = {
    400: errors.Invalid,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.Invalid,
    422: errors.Invalid,
    403: errors.Forbidden,
    401: errors.Unauthenticated,
    429: errors.Overloaded,
    503: errors.Overloaded,
}


def server_url(config: Settings) -> str | None:
    """The server's base URL when the tracking URI is http(s); ``None`` means local."""
    uri = config.tracking_uri
    if uri and uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return None


def local_config(config: Settings) -> Settings:
    """The settings a local store opens: a non-http tracking URI names the database."""
    uri = config.tracking_uri
    if uri and server_url(config) is None and "://" in uri:
        return replace(config, db_url=uri)
    return config


def error_from_response(resp: httpx.Response, what: str) -> errors.LoopstackError:
    """The loopstack error an error answer names (by class name, else by status)."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": resp.text[:500] if resp.text else ""}
    cls = _BY_NAME.get(str(body.get("error", "")))
    if cls is None:
        cls = _BY_STATUS.get(resp.status_code, errors.LoopstackError)
    message = (
        body.get("message") or body.get("detail") or f"{what} answered HTTP {resp.status_code}"
    )
    field = body.get("field")
    return cls(str(message), field=str(field) if field is not None else None)


def _retry_after(resp: httpx.Response | None, attempt: int) -> float:
    base = 0.1 * 2**attempt
    if resp is not None:
        with suppress(ValueError):
            base = max(base, min(float(resp.headers.get("retry-after", "")), 10.0))
    return base * (1 + random.random() * 0.25)  # jitter: writers retrying apart


_CHUNK = 1 << 20


def _file_chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes in 1 MiB chunks: an upload never holds the whole file in memory."""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise errors.NotFound(f"cannot read {path} to upload it: {exc.strerror}") from exc


def _default_retries() -> int:
    """Attempts after the first (``LOOPSTACK_HTTP_RETRIES``, default 6: about 7 s of backoff)."""
    text = os.environ.get("LOOPSTACK_HTTP_RETRIES", "6")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 20:
        raise errors.Invalid(
            f"LOOPSTACK_HTTP_RETRIES must be a whole number from 0 to 20; got {text!r}",
            field="LOOPSTACK_HTTP_RETRIES",
        )
    return value


_shared: dict[tuple[str, str | None, str | None], HttpClient] = {}
_shared_lock = threading.Lock()


@atexit.register
def close_shared(base_url: str | None = None) -> None:
    """Close the shared clients (of one server, or all)."""
    with _shared_lock:
        for key in list(_shared):
            if base_url is None or key[0] == base_url.rstrip("/"):
                _shared.pop(key).close()


class HttpClient:
    """Requests to a loopstack server's native API (``/api/v1`` unless ``prefix`` says other).

    ``call`` answers the decoded JSON body (``{}`` for an empty one); errors are raised
    as loopstack errors. ``retries`` counts attempts after the first.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        project: str | None = None,
        prefix: str = "/api/v1",
        timeout: float = 60.0,
        retries: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        self.project = project
        self.retries = _default_retries() if retries is None else retries
        headers = {"User-Agent": "loopstack"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if project:
            headers[PROJECT_HEADER] = project
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    @classmethod
    def shared(
        cls, base_url: str, *, token: str | None = None, project: str | None = None
    ) -> HttpClient:
        """One client (and connection pool) per server, token and project in this process."""
        key = (base_url.rstrip("/"), token, project)
        with _shared_lock:
            client = _shared.get(key)
            if client is None:
                client = _shared[key] = cls(base_url, token=token, project=project)
            return client

    @classmethod
    def from_settings(cls, config: Settings) -> HttpClient:
        """The shared client for the configured server, token and project."""
        base = server_url(config)
        if base is None:
            raise errors.Invalid(
                "expected an http(s):// tracking URI to reach a server; got "
                f"{config.tracking_uri!r}",
                field="tracking_uri",
            )
        return cls.shared(base, token=config.token, project=config.project)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, *, stream: bool = False, **kw: Any) -> httpx.Response:
        url = self.prefix + path
        what = f"{method} {self.base_url}{url}"
        resp: httpx.Response | None = None
        upload = kw.get("content")
        for attempt in range(self.retries + 1):
            try:
                if isinstance(upload, Path):  # streamed from the file, afresh on each try
                    kw["content"] = _file_chunks(upload)
                    kw["headers"] = {**kw.get("headers", {}), "Content-Length": str(_size(upload))}
                request = self.http.build_request(method, url, **kw)
                resp = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise errors.StoreUnavailable(
                        f"cannot reach the loopstack server at {self.base_url}: {exc}"
                    ) from exc
                time.sleep(_retry_after(None, attempt))
                continue
            if resp.status_code in _RETRY_STATUSES and attempt < self.retries:
                delay = _retry_after(resp, attempt)
                resp.close()
                time.sleep(delay)
                continue
            break
        assert resp is not None
        if resp.status_code >= 400:
            if stream:
                resp.read()
                resp.close()
            raise error_from_response(resp, what)
        return resp

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | Path | None = None,
        content_type: str = "application/octet-stream",
    ) -> Any:
        """``method prefix+path``; the decoded JSON answer, or the loopstack error it names.

        ``content`` (raw bytes, or a file streamed from disk: an upload) goes with
        ``content_type``."""
        kw: dict[str, Any] = {}
        if params is not None:
            kw["params"] = {k: v for k, v in params.items() if v is not None}
        if json is not None:
            kw["json"] = json
        if content is not None:
            kw["content"] = content
            kw["headers"] = {"Content-Type": content_type}
        resp = self._send(method, path, **kw)
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            raise errors.LoopstackError(
                f"{method} {self.base_url}{self.prefix}{path} answered a body that is not "
                f"JSON: {resp.text[:200]!r}"
            ) from exc

    @contextmanager
    def stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> Iterator[httpx.Response]:
        """A streamed answer (for downloads); errors are raised before the first byte."""
        kw: dict[str, Any] = {}
        if params is not None:
            kw["params"] = {k: v for k, v in params.items() if v is not None}
        resp = self._send(method, path, stream=True, **kw)
        try:
            yield resp
        finally:
            resp.close()
