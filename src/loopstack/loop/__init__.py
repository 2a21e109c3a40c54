"""The closed loop: triggers, gates, rollouts, the controller."""

from loopstack.loop._controller import Controller, ControllerEvent, StepReport
from loopstack.loop._cron import CronSchedule
from loopstack.loop._firings import FiringView, loop_status
from loopstack.loop._gate_client import RestGates
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
from loopstack.loop._gates_report import GateReport, GateResult, recorded_gates
from loopstack.loop._guardrails import Breach, Measurement, measure_candidate
from loopstack.loop._rollout import RolloutEvent, Rollouts
from loopstack.loop._rollout_client import RestRollouts, rollouts
from loopstack.loop._rollout_plan import GUARDRAIL_METRICS, CanaryStep, Guardrail, RolloutPlan
from loopstack.loop._rollout_store import Rollout
from loopstack.loop._significance import Bootstrap, paired_bootstrap
from loopstack.loop._trigger_client import RestTriggers, triggers
from loopstack.loop._trigger_store import StoredTrigger, TriggerStore
from loopstack.loop._triggers import KINDS, Firing, Trigger

__all__ = [  # noqa: RUF022 - plain sorted(), as the package test expects
    "Bootstrap",
    "Breach",
    "CanaryStep",
    "Controller",
    "ControllerEvent",
    "CronSchedule",
    "Fairness",
    "Firing",
    "FiringView",
    "GATES_REASONS_TAG",
    "GATES_TAG",
    "GUARDRAIL_METRICS",
    "GateReport",
    "GateResult",
    "Gates",
    "Guardrail",
    "KINDS",
    "METRICS",
    "Measurement",
    "MetricThreshold",
    "RestGates",
    "RestRollouts",
    "RestTriggers",
    "Rollout",
    "RolloutEvent",
    "RolloutPlan",
    "Rollouts",
    "StepReport",
    "StoredTrigger",
    "Trigger",
    "TriggerStore",
    "evaluate_gates",
    "gate_report",
    "gate_results",
    "gate_version",
    "loop_status",
    "measure_candidate",
    "paired_bootstrap",
    "record_gates",
    "recorded_gates",
    "require_gates_passed",
    "rollouts",
    "triggers",
]
