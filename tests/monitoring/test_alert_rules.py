"""Alert rules: validation and the state machine's hysteresis, deduplication and cooldown."""

import math

import pytest

from loopstack.errors import Invalid
from loopstack.monitoring import AlertRule, RuleState, evaluate


def run(rule: AlertRule, values: list[float], step: float = 60.0, start: float = 0.0):
    """Evaluate ``values`` one window each; the event kinds per window and the last state."""
    state = RuleState()
    kinds = []
    for i, v in enumerate(values):
        state, events = evaluate(rule, state, v, start + i * step)
        kinds.append([e.kind for e in events])
    return kinds, state


def test_fires_only_after_n_breaches_in_a_row():
    rule = AlertRule("p99", "latency_p99_ms", ">", 250, for_windows=3)
    kinds, state = run(rule, [300, 300, 100, 300, 300, 300])
    assert kinds == [[], [], [], [], [], ["fired"]]
    assert state.firing and state.firing_since == 300.0


def test_one_incident_is_one_alert_then_resolves_after_m_clean_windows():
    rule = AlertRule("acc", "accuracy", "<", 0.8, category="model_quality", resolve_windows=2)
    kinds, state = run(rule, [0.7, 0.6, 0.9, 0.5, 0.9, 0.95, 0.9])
    assert kinds == [
        ["fired"],
        ["deduplicated"],
        [],  # one clean window is not enough
        ["deduplicated"],  # a breach resets the clean count
        [],
        ["resolved"],
        [],
    ]
    assert not state.firing and state.resolved_at == 300.0


def test_resolved_event_carries_the_incident_start():
    rule = AlertRule("r", "m", ">=", 1)
    state, _ = evaluate(rule, RuleState(), 1.0, 10.0)
    state, events = evaluate(rule, state, 0.0, 70.0)
    assert [(e.kind, e.started_at, e.value) for e in events] == [("resolved", 10.0, 0.0)]


def test_cooldown_suppresses_a_new_firing_then_lets_it_through():
    rule = AlertRule("r", "m", ">", 1, cooldown_s=150)
    # fire at 0, resolve at 60, breach at 120 and 180 (inside 150 s), 240 (outside)
    kinds, state = run(rule, [2, 0, 2, 2, 2])
    assert kinds == [["fired"], ["resolved"], ["suppressed"], ["suppressed"], ["fired"]]
    assert state.firing_since == 240.0


def test_without_cooldown_a_new_breach_is_a_new_alert():
    rule = AlertRule("r", "m", ">", 1)
    kinds, _ = run(rule, [2, 0, 2])
    assert kinds == [["fired"], ["resolved"], ["fired"]]


def test_nan_window_changes_no_counter():
    rule = AlertRule("r", "m", ">", 1, for_windows=2)
    kinds, state = run(rule, [2, math.nan, 2])
    assert kinds == [[], [], ["fired"]]
    assert state.last_evaluated == 120.0


@pytest.mark.parametrize(
    ("comparison", "value", "breach"),
    [(">", 1.0, False), (">=", 1.0, True), ("<", 1.0, False), ("<=", 1.0, True), ("<", 0.5, True)],
)
def test_comparisons_at_the_threshold(comparison, value, breach):
    assert AlertRule("r", "m", comparison, 1.0).breached(value) is breach


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"comparison": "=="}, "comparison"),
        ({"severity": "fatal"}, "severity"),
        ({"category": "business"}, "category"),
        ({"for_windows": 0}, "for_windows"),
        ({"resolve_windows": 1.5}, "resolve_windows"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"threshold": math.inf}, "threshold"),
        ({"threshold": "1"}, "threshold"),
        ({"name": "bad name"}, "name"),
        ({"metric": ""}, "metric"),
        ({"labels": {"1x": "a"}}, "labels"),
        ({"labels": {"endpoint": 3}}, "labels"),
    ],
)
def test_invalid_rules_say_what_was_expected_and_what_came(kwargs, field):
    args = {"name": "r", "metric": "m", "comparison": ">", "threshold": 1.0} | kwargs
    with pytest.raises(Invalid) as err:
        AlertRule(**args)
    assert err.value.field == field
    assert "got" in err.value.message and "must" in err.value.message


def test_rule_round_trips_through_dict_and_rejects_unknown_keys():
    rule = AlertRule("r", "m", "<=", 2, severity="critical", labels={"endpoint": "churn"})
    assert AlertRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(Invalid, match="unknown alert rule keys"):
        AlertRule.from_dict(rule.to_dict() | {"window": 5})
    with pytest.raises(Invalid, match="needs"):
        AlertRule.from_dict({"name": "r"})


def test_non_numeric_value_is_invalid():
    with pytest.raises(Invalid, match="must be a number"):
        evaluate(AlertRule("r", "m", ">", 1), RuleState(), "high", 0.0)  # type: ignore[arg-type]
