"""Where commands that work on the metadata database (audit, tokens, doctor) find it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopstack.store.remote import local_config, server_url

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["local_config", "local_stores", "server_get", "server_url"]


def local_stores() -> Stores:
    from loopstack.config import settings
    from loopstack.store import open_stores

    return open_stores(local_config(settings()))


def server_get(base: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``/api/v1<path>`` on a loopstack server; HTTP errors come back as loopstack errors."""
    import httpx

    from loopstack import errors
    from loopstack.config import settings

    token = settings().token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.get(f"{base}/api/v1{path}", params=params, headers=headers, timeout=60)
    except httpx.TransportError as exc:
        raise errors.StoreUnavailable(
            f"cannot reach the loopstack server at {base}: {exc}"
        ) from exc
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        cls = getattr(errors, str(body.get("error", "")), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.LoopstackError)):
            cls = errors.LoopstackError
        raise cls(body.get("message") or f"{base}{path} answered HTTP {resp.status_code}")
    return resp.json()
