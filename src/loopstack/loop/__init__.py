"""The closed loop: triggers, gates, rollouts, the controller."""

from __future__ import annotations

from loopstack.loop._guardrails import Breach, Measurement, measure_candidate
from loopstack.loop._rollout import RolloutEvent, Rollouts
from loopstack.loop._rollout_client import RestRollouts, rollouts
from loopstack.loop._rollout_plan import GUARDRAIL_METRICS, CanaryStep, Guardrail, RolloutPlan
from loopstack.loop._rollout_store import Rollout

__all__ = [
    "GUARDRAIL_METRICS",
    "Breach",
    "CanaryStep",
    "Guardrail",
    "Measurement",
    "RestRollouts",
    "Rollout",
    "RolloutEvent",
    "RolloutPlan",
    "Rollouts",
    "measure_candidate",
    "rollouts",
]
