"""Open a domain's store in a project: the one place that picks the server (REST) or the
metadata store (SQL), and which project a local store acts in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from loopstack.store import Stores
    from loopstack.store.remote import HttpClient

__all__ = ["open_in_project"]

T = TypeVar("T")


def open_in_project(
    remote: Callable[[HttpClient], T],
    local: Callable[[Stores, str, int], T],
    *,
    actor: str | None = None,
    project: str | int | None = None,
    project_id: int | None = None,
) -> T:
    """``remote(client)`` for an http(s) tracking URI, else ``local(stores, actor, project_id)``.

    Locally the project is ``project`` (a name or id), else ``project_id``, else
    ``settings().project``; through a server it is named (the project header), never
    numbered, and the actor is the token's.

    >>> open_in_project(RestRegistry, lambda s, a, p: SqlRegistry(s, actor=a, project_id=p))
    """
    from loopstack.auth._projects import project_in_use
    from loopstack.config import settings
    from loopstack.store.remote import HttpClient, local_config, server_url

    config = settings()
    if server_url(config) is not None:
        if project is not None and not isinstance(project, str):
            from loopstack.errors import Invalid

            raise Invalid(
                f"through a server a project is named, not numbered; got {project!r}",
                field="project",
            )
        if project is not None:
            config = replace(config, project=project)
        return remote(HttpClient.from_settings(config))
    from loopstack.store import open_stores

    config = local_config(config)
    stores = open_stores(config)
    if project is None and project_id is not None:
        pid = project_id
    else:
        pid = project_in_use(stores.db, config, project=project)
    return local(stores, actor or config.actor, pid)
