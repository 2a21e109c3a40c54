"""Model registry: registered models, versions, aliases with history, approvals, lineage."""

from loopstack.registry._client import lineage, registry
from loopstack.registry._compat import signature_breaks
from loopstack.registry._entities import (
    AliasMove,
    ApprovalRequest,
    ModelVersion,
    RegisteredModel,
)
from loopstack.registry._lineage import LineageGraph
from loopstack.registry._sql_store import SqlRegistry, package_digest

__all__ = [
    "AliasMove",
    "ApprovalRequest",
    "LineageGraph",
    "ModelVersion",
    "RegisteredModel",
    "SqlRegistry",
    "lineage",
    "package_digest",
    "registry",
    "signature_breaks",
]
