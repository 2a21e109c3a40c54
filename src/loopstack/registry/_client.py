"""Open the registry the configuration names: the one place that picks SQL or REST."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loopstack.config import settings
from loopstack.registry._lineage import LineageGraph
from loopstack.registry._store import RegistryStore

__all__ = ["get_registry", "lineage", "registry"]


def registry(
    *, actor: str | None = None, project: str | int | None = None, project_id: int | None = None
) -> RegistryStore:
    """The model registry: through the server for an http(s) tracking URI, else the metadata
    store directly. Same methods, entities and errors either way.

    Locally the project is ``project`` (a name or id), else ``project_id``, else
    ``settings().project`` (``LOOPSTACK_PROJECT`` / ``ls.set_project``); ``actor`` names who
    acts in the audit log. Through a server both come from the token and the project header.

    >>> reg = ls.get_registry()
    >>> reg.get_version_by_alias("churn", "production").version
    """
    from loopstack.store.remote import local_config, server_url

    config = settings()
    if server_url(config) is not None:
        from loopstack.registry._rest_store import RestRegistry
        from loopstack.store.remote import HttpClient

        if project is not None and not isinstance(project, str):
            from loopstack.errors import Invalid

            raise Invalid(
                f"through a server a project is named, not numbered; got {project!r}",
                field="project",
            )
        if project is not None:
            config = replace(config, project=project)
        return RestRegistry(HttpClient.from_settings(config))
    from loopstack.auth import project_in_use
    from loopstack.registry._sql_store import SqlRegistry
    from loopstack.store import open_stores

    config = local_config(config)
    stores = open_stores(config)
    if project is None and project_id is not None:
        pid = project_id
    else:
        pid = project_in_use(stores.db, config, project=project)
    return SqlRegistry(stores, actor=actor or config.actor, project_id=pid)


def lineage(obj: Any) -> LineageGraph:
    """Upstream and downstream of a run, dataset, model version or deployment.

    >>> ls.lineage("model_version:churn/3").upstream
    ['run:9f2...', 'dataset:1c4...']
    """
    return registry().lineage(obj)


get_registry = registry
