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
    """GET ``/api/v1<path>`` on a loopstack server, with the token and the chosen project;
    HTTP errors come back as loopstack errors."""
    from loopstack.config import settings
    from loopstack.store.remote import HttpClient

    config = settings()
    return HttpClient.shared(base, token=config.token, project=config.project).call(
        "GET", path, params=params
    )
