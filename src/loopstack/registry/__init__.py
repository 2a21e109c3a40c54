"""Model registry: registered models, versions, aliases with history, approvals, lineage."""

from loopstack.registry._client import get_registry, lineage, registry
from loopstack.registry._compat import signature_breaks
from loopstack.registry._entities import (
    AliasMove,
    ApprovalRequest,
    ModelVersion,
    RegisteredModel,
)
from loopstack.registry._lineage import LineageGraph
from loopstack.registry._models import (
    TRAINING_SET_TAG,
    load_model,
    log_model,
    resolve_model_uri,
    training_set_of,
)
from loopstack.registry._rest_store import RestRegistry
from loopstack.registry._sql_store import SqlRegistry, package_digest
from loopstack.registry._store import ApprovalStore, ModelStore, RegistryStore

__all__ = [
    "TRAINING_SET_TAG",
    "AliasMove",
    "ApprovalRequest",
    "ApprovalStore",
    "LineageGraph",
    "ModelStore",
    "ModelVersion",
    "RegisteredModel",
    "RegistryStore",
    "RestRegistry",
    "SqlRegistry",
    "get_registry",
    "lineage",
    "load_model",
    "log_model",
    "package_digest",
    "registry",
    "resolve_model_uri",
    "signature_breaks",
    "training_set_of",
]
