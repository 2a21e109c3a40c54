"""Where commands that work on the metadata database (audit, tokens, doctor) find it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopstack.store.remote import local_config, server_url

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["local_config", "local_stores", "server_url"]


def local_stores() -> Stores:
    """The stores of the local metadata database (a non-http tracking URI names it)."""
    from loopstack.config import settings
    from loopstack.store import open_stores

    return open_stores(local_config(settings()))
