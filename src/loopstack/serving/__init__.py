"""Online serving: the adaptive batcher and the prediction log (more parts join on merge)."""

from loopstack.serving._batcher import Batcher, BatcherStats, BatchFailed
from loopstack.serving._prediction_log import PredictionLog, PredictionLogStats, RawJSON

__all__ = [
    "BatchFailed",
    "Batcher",
    "BatcherStats",
    "PredictionLog",
    "PredictionLogStats",
    "RawJSON",
]
