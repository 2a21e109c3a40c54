"""Open the registry the configuration names: the one place that picks SQL or REST."""

from __future__ import annotations

from typing import Any

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
    from loopstack.auth._open import open_in_project

    def remote(client: Any) -> RegistryStore:
        from loopstack.registry._rest_store import RestRegistry

        return RestRegistry(client)

    def local(stores: Any, who: str, pid: int) -> RegistryStore:
        from loopstack.registry._sql_store import SqlRegistry

        return SqlRegistry(stores, actor=who, project_id=pid)

    return open_in_project(remote, local, actor=actor, project=project, project_id=project_id)


def lineage(obj: Any) -> LineageGraph:
    """Upstream and downstream of a run, dataset, model version or deployment.

    >>> ls.lineage("model_version:churn/3").upstream
    ['run:9f2...', 'dataset:1c4...']
    """
    return registry().lineage(obj)


get_registry = registry
