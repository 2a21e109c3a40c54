"""Open the registry the configuration names (the same stores as tracking)."""

from __future__ import annotations

from typing import Any

from loopstack.config import settings
from loopstack.registry._lineage import LineageGraph, project_lineage
from loopstack.registry._sql_store import SqlRegistry

__all__ = ["get_registry", "lineage", "registry"]


def registry(*, actor: str | None = None, project_id: int | None = None) -> SqlRegistry:
    """The model registry over the configured metadata store.

    >>> reg = ls.get_registry()
    >>> reg.get_version_by_alias("churn", "production").version
    """
    from loopstack.auth import project_in_use
    from loopstack.errors import Invalid
    from loopstack.store import open_stores

    config = settings()
    if config.tracking_uri and config.tracking_uri.startswith(("http://", "https://")):
        raise Invalid(
            "the registry's Python API talks to the metadata store directly for now; "
            "unset LOOPSTACK_TRACKING_URI and set LOOPSTACK_DB_URL, or use the "
            "server's MLflow-compatible registry API",
            field="tracking_uri",
        )
    if config.tracking_uri:  # a database URL given as the tracking URI, as TrackingClient reads it
        from dataclasses import replace

        config = replace(config, db_url=config.tracking_uri)
    stores = open_stores(config)
    if project_id is None:  # the project chosen by ls.set_project / LOOPSTACK_PROJECT
        project_id = project_in_use(stores.db, config)
    return SqlRegistry(stores, actor=actor or config.actor, project_id=project_id)


def lineage(obj: Any) -> LineageGraph:
    """Upstream and downstream of a run, dataset, model version or deployment.

    >>> ls.lineage("model_version:churn/3").upstream
    ['run:9f2...', 'dataset:1c4...']
    """
    return project_lineage(registry(), obj)


get_registry = registry
