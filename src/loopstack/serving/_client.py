"""Open the deployments the configuration names: the one place that picks SQL or REST."""

from __future__ import annotations

from typing import Any

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
    from loopstack.auth._open import open_in_project

    def remote(client: Any) -> DeploymentStore:
        from loopstack.serving._rest_deployments import RestDeployments

        return RestDeployments(client)

    def local(stores: Any, who: str, pid: int) -> DeploymentStore:
        from loopstack.serving._sql_deployments import SqlDeployments

        return SqlDeployments(stores, actor=who, project_id=pid)

    return open_in_project(remote, local, actor=actor, project=project, project_id=project_id)
