"""The closed loop: triggers, gates, rollouts, the controller."""

from loopstack.loop._gate_store import (
    GATES_REASONS_TAG,
    GATES_TAG,
    gate_report,
    gate_results,
    gate_version,
    record_gates,
    require_gates_passed,
)
from loopstack.loop._gates import Fairness, Gates, MetricThreshold
from loopstack.loop._gates_eval import evaluate_gates
from loopstack.loop._gates_metrics import METRICS
from loopstack.loop._gates_report import GateReport, GateResult
from loopstack.loop._significance import Bootstrap, paired_bootstrap

__all__ = [
    "GATES_REASONS_TAG",
    "GATES_TAG",
    "METRICS",
    "Bootstrap",
    "Fairness",
    "GateReport",
    "GateResult",
    "Gates",
    "MetricThreshold",
    "evaluate_gates",
    "gate_report",
    "gate_results",
    "gate_version",
    "paired_bootstrap",
    "record_gates",
    "require_gates_passed",
]
