"""Serving: stored, audited deployments and the routing policies over them; endpoints
that load registered models once and answer predictions; the adaptive batcher and the
prediction log; feature enrichment (``enrich``: requests that carry entity keys get the
model's features from the online store, behind a timeout and a circuit breaker).

``deployments()`` opens the project's ``DeploymentStore`` (SQL directly, or REST
through a server); ``route()`` picks, for one request, the arm that answers and the
shadow arms that get a copy. The runtime (``Endpoint``, ``ServingRuntime``, the
digest-keyed ``ModelCache``) loads models; the Open Inference Protocol v2 codec (pure
functions) is ``_oip``. ``Answerer.predict`` is the one entry point every protocol
calls: per-model adaptive batching (``BatchSettings``), the ``PredictionLog`` and the
``ServingMetrics`` in the request path, shadow comparisons and ``Feedback``. The HTTP
app is ``loopstack.server.create_serving_app``;
``loopstack serve`` runs it. The SQL and REST stores load on first use, so importing
this package stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from loopstack.serving._answer import Answer, Answerer
from loopstack.serving._batch_settings import BATCHING_ENV, BatchSettings
from loopstack.serving._batcher import Batcher, BatcherStats, BatchFailed
from loopstack.serving._client import deployments
from loopstack.serving._deployed import DeploymentSource, arm_specs
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
from loopstack.serving._enrich import (
    Enricher,
    EnrichResult,
    EnrichStats,
    enrich,
    training_features,
)
from loopstack.serving._enrich_config import BreakerConfig, CircuitBreaker, EnrichmentConfig
from loopstack.serving._enrich_metrics import enrichment_metrics
from loopstack.serving._feedback import Feedback
from loopstack.serving._metrics import ServingMetrics
from loopstack.serving._policies import (
    Route,
    epsilon_greedy_choice,
    key_bucket,
    route,
    thompson_choice,
)
from loopstack.serving._prediction_log import PredictionLog, PredictionLogStats, RawJSON
from loopstack.serving._resolve import resolve_arm
from loopstack.serving._runtime import (
    ENDPOINTS_ENV,
    Choice,
    Endpoint,
    EndpointSpec,
    ModelCache,
    ServedModel,
    ServingRuntime,
    endpoint_name_for,
    limit_threads,
    settle_heap,
    specs_from_env,
    specs_to_env,
)

if TYPE_CHECKING:
    from loopstack.serving._rest_deployments import RestDeployments
    from loopstack.serving._sql_deployments import SqlDeployments

_LAZY = {
    "RestDeployments": "loopstack.serving._rest_deployments",
    "SqlDeployments": "loopstack.serving._sql_deployments",
}

__all__ = [
    "BATCHING_ENV",
    "ENDPOINTS_ENV",
    "POLICIES",
    "ROLES",
    "STAGES",
    "STRATEGIES",
    "Answer",
    "Answerer",
    "Arm",
    "ArmStats",
    "BatchFailed",
    "BatchSettings",
    "Batcher",
    "BatcherStats",
    "BreakerConfig",
    "Choice",
    "CircuitBreaker",
    "Deployment",
    "DeploymentRevision",
    "DeploymentSource",
    "DeploymentStore",
    "EnrichResult",
    "EnrichStats",
    "Enricher",
    "EnrichmentConfig",
    "Endpoint",
    "EndpointSpec",
    "Feedback",
    "ModelCache",
    "PredictionLog",
    "PredictionLogStats",
    "RawJSON",
    "RestDeployments",
    "Route",
    "arm_specs",
    "ServedModel",
    "ServingMetrics",
    "ServingRuntime",
    "SqlDeployments",
    "deployments",
    "endpoint_name_for",
    "enrich",
    "enrichment_metrics",
    "epsilon_greedy_choice",
    "is_version_number",
    "key_bucket",
    "limit_threads",
    "parse_model_ref",
    "resolve_arm",
    "route",
    "settle_heap",
    "specs_from_env",
    "specs_to_env",
    "thompson_choice",
    "training_features",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopstack.serving' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
