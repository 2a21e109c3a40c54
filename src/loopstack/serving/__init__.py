"""Serving: stored, audited deployments and the routing policies over them.

``deployments()`` opens the project's ``DeploymentStore`` (SQL directly, or REST
through a server); ``route()`` picks, for one request, the arm that answers and the
shadow arms that get a copy. The SQL and REST stores load on first use, so importing
this package stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from loopstack.serving._client import deployments
from loopstack.serving._deployments import (
    POLICIES,
    ROLES,
    STAGES,
    STRATEGIES,
    Arm,
    ArmStats,
    Deployment,
    DeploymentRevision,
    DeploymentStore,
    is_version_number,
    parse_model_ref,
)
from loopstack.serving._policies import (
    Route,
    epsilon_greedy_choice,
    key_bucket,
    route,
    thompson_choice,
)
from loopstack.serving._resolve import resolve_arm

if TYPE_CHECKING:
    from loopstack.serving._rest_deployments import RestDeployments
    from loopstack.serving._sql_deployments import SqlDeployments

_LAZY = {
    "RestDeployments": "loopstack.serving._rest_deployments",
    "SqlDeployments": "loopstack.serving._sql_deployments",
}

__all__ = [
    "POLICIES",
    "ROLES",
    "STAGES",
    "STRATEGIES",
    "Arm",
    "ArmStats",
    "Deployment",
    "DeploymentRevision",
    "DeploymentStore",
    "RestDeployments",
    "Route",
    "SqlDeployments",
    "deployments",
    "epsilon_greedy_choice",
    "is_version_number",
    "key_bucket",
    "parse_model_ref",
    "resolve_arm",
    "route",
    "thompson_choice",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopstack.serving' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
