"""Online serving: endpoints that load registered models once and answer predictions,
the adaptive batcher, and the prediction log.

The runtime (``Endpoint``, ``ServingRuntime``, the digest-keyed ``ModelCache``) is
here; the Open Inference Protocol v2 codec (pure functions) is ``_oip``. The HTTP app
is ``loopstack.server.create_serving_app``; ``loopstack serve`` runs it.
"""

from loopstack.serving._batcher import Batcher, BatcherStats, BatchFailed
from loopstack.serving._prediction_log import PredictionLog, PredictionLogStats, RawJSON
from loopstack.serving._runtime import (
    ENDPOINTS_ENV,
    Endpoint,
    EndpointSpec,
    ModelCache,
    ServedModel,
    ServingRuntime,
    endpoint_name_for,
    limit_threads,
    specs_from_env,
    specs_to_env,
)

__all__ = [
    "ENDPOINTS_ENV",
    "BatchFailed",
    "Batcher",
    "BatcherStats",
    "Endpoint",
    "EndpointSpec",
    "ModelCache",
    "PredictionLog",
    "PredictionLogStats",
    "RawJSON",
    "ServedModel",
    "ServingRuntime",
    "endpoint_name_for",
    "limit_threads",
    "specs_from_env",
    "specs_to_env",
]
