"""Open the deployments the configuration names: the one place that picks SQL or REST."""

from __future__ import annotations

from dataclasses import replace

from loopstack.config import settings
from loopstack.serving._deployments import DeploymentStore

__all__ = ["deployments"]


def deployments(
    *, actor: str | None = None, project: str | int | None = None, project_id: int | None = None
) -> DeploymentStore:
    """The project's deployments: through the server for an http(s) tracking URI, else the
    metadata store directly. Same methods, entities and errors either way.

    >>> d = ls.serving.deployments()
    >>> d.create("churn-api", "churn@champion")
    >>> d.canary("churn-api", "churn/4", weight=5)
    """
    from loopstack.store.remote import local_config, server_url

    config = settings()
    if server_url(config) is not None:
        from loopstack.serving._rest_deployments import RestDeployments
        from loopstack.store.remote import HttpClient

        if project is not None and not isinstance(project, str):
            from loopstack.errors import Invalid

            raise Invalid(
                f"through a server a project is named, not numbered; got {project!r}",
                field="project",
            )
        if project is not None:
            config = replace(config, project=project)
        return RestDeployments(HttpClient.from_settings(config))
    from loopstack.auth import project_in_use
    from loopstack.serving._sql_deployments import SqlDeployments
    from loopstack.store import open_stores

    config = local_config(config)
    stores = open_stores(config)
    if project is None and project_id is not None:
        pid = project_id
    else:
        pid = project_in_use(stores.db, config, project=project)
    return SqlDeployments(stores, actor=actor or config.actor, project_id=pid)
