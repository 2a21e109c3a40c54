"""A rollout plan is checked whole when it is made, and round-trips through JSON."""

from __future__ import annotations

import json

import pytest

from loopstack.errors import Invalid
from loopstack.loop import GUARDRAIL_METRICS, CanaryStep, Guardrail, RolloutPlan


def _plan() -> RolloutPlan:
    return RolloutPlan(
        steps=[CanaryStep(0.05, 60), CanaryStep(0.25, 60), CanaryStep(0.5, 60), CanaryStep(1.0, 0)],
        shadow_s=30,
        guardrails=[Guardrail("error_rate", "<=", 0.02), Guardrail("latency_p99_ms", "<", 250)],
        breaches_to_rollback=3,
        interval_s=5,
        window_s=30,
    )


def test_a_plan_round_trips_through_json() -> None:
    plan = _plan()
    again = RolloutPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert [s.weight for s in again.steps] == [0.05, 0.25, 0.5, 1.0]
    assert str(again.guardrails[1]) == "latency_p99_ms < 250"


def test_steps_and_guardrails_may_come_as_plain_objects() -> None:
    plan = RolloutPlan(
        steps=[{"weight": 0.1, "bake_s": 1}],  # type: ignore[list-item]
        guardrails=[{"metric": "accuracy", "op": ">=", "threshold": 0.8}],  # type: ignore[list-item]
    )
    assert plan.steps == [CanaryStep(0.1, 1)]
    assert plan.guardrails[0].holds(0.9) and not plan.guardrails[0].holds(0.7)


def test_an_unknown_guardrail_metric_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(Invalid) as err:
        Guardrail("latency_p95", "<", 100)
    message = str(err.value)
    assert "'latency_p95'" in message
    for known in ("error_rate", "latency_p99_ms", "prediction_drift", "shadow_agreement"):
        assert known in message and known in GUARDRAIL_METRICS


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: CanaryStep(0), "above 0 and at most 1"),
        (lambda: CanaryStep(1.5), "got 1.5"),
        (lambda: CanaryStep(0.1, bake_s=-1), "'bake_s' must be >= 0"),
        (lambda: CanaryStep(True), "finite number"),  # type: ignore[arg-type]
        (lambda: Guardrail("error_rate", "=", 0.1), "one of ['<', '<=', '>', '>=']"),
        (lambda: Guardrail("error_rate", "<", float("nan")), "finite number"),
        (lambda: RolloutPlan(), "canary steps or a shadow phase"),
        (lambda: RolloutPlan(steps=[CanaryStep(0.5), CanaryStep(0.25)]), "must increase"),
        (lambda: RolloutPlan(steps=[CanaryStep(0.5), CanaryStep(0.5)]), "must increase"),
        (lambda: RolloutPlan(shadow_s=0), "'shadow_s' must be > 0"),
        (lambda: RolloutPlan(shadow_s=1, breaches_to_rollback=0), "whole number >= 1"),
        (lambda: RolloutPlan(shadow_s=1, breaches_to_rollback=1.5), "whole number >= 1"),
        (lambda: RolloutPlan(shadow_s=1, interval_s=0), "'interval_s' must be"),
        (lambda: RolloutPlan(shadow_s=1, window_s=-3), "'window_s' must be"),
        (lambda: RolloutPlan(shadow_s=1, metrics_url="ftp://x"), "http(s) URL"),
        (lambda: RolloutPlan(shadow_s=1, require_approval="yes"), "true or false"),  # type: ignore[arg-type]
        (lambda: RolloutPlan.from_dict({"shadow_s": 1, "bake": 3}), "no key(s) ['bake']"),
        (lambda: RolloutPlan.from_dict({"steps": [{"bake_s": 3}]}), "needs key(s) ['weight']"),
        (lambda: RolloutPlan.from_dict([1]), "is an object"),
    ],
)
def test_a_bad_plan_is_refused_saying_what_was_expected(make: object, words: str) -> None:
    with pytest.raises(Invalid) as err:
        make()  # type: ignore[operator]
    assert words in str(err.value)


def test_a_shadow_only_plan_and_a_last_step_below_one_are_valid() -> None:
    assert RolloutPlan(shadow_s=10).steps == []
    assert RolloutPlan(steps=[CanaryStep(0.05), CanaryStep(0.5)]).steps[-1].weight == 0.5
