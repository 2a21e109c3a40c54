"""Where commands that work on the metadata database (audit, tokens, doctor) find it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopstack.store.remote import local_config, server_url

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["local_config", "local_project", "local_stores", "server_url"]


def local_stores() -> Stores:
    """The stores of the local metadata database (a non-http tracking URI names it)."""
    from loopstack.config import settings
    from loopstack.store import open_stores

    return open_stores(local_config(settings()))


def local_project(command: str, routes: str, *, why: str | None = None) -> tuple[Stores, str, int]:
    """The stores, actor and project of a command group (or command) that acts on the
    local metadata store only; Invalid when LOOPSTACK_TRACKING_URI names a server (which
    has no ``routes`` routes yet; or, with ``why``, saying why the command runs here)."""
    from loopstack.auth._open import open_in_project
    from loopstack.errors import Invalid

    def remote(client: Any) -> tuple[Stores, str, int]:
        reason = why or f"names a server, which has no {routes} routes yet"
        raise Invalid(
            f"loopstack {command} works on a local metadata store; LOOPSTACK_TRACKING_URI {reason}",
            field="tracking_uri",
        )

    return open_in_project(remote, lambda stores, actor, pid: (stores, actor, pid))
