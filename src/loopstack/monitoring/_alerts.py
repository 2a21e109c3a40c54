"""Alert rules and their evaluation as a pure state machine.

A rule compares one monitored metric against a threshold once per evaluation
window. Hysteresis keeps a flapping metric from paging: the rule fires after
``for_windows`` breaches in a row and resolves after ``resolve_windows`` clean
windows in a row. While firing, further breaches are deduplicated (one incident is
one alert); after a resolution, a new firing inside ``cooldown_s`` is suppressed.

``evaluate(rule, state, value, now)`` returns the new state and the events; it
does no I/O, so the store and the sinks are thin layers around it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from loopstack.errors import Invalid

__all__ = [
    "CATEGORIES",
    "COMPARISONS",
    "SEVERITIES",
    "AlertEvent",
    "AlertRule",
    "RuleState",
    "evaluate",
]

COMPARISONS = (">", ">=", "<", "<=")
SEVERITIES = ("info", "warning", "critical")
CATEGORIES = ("infrastructure", "model_quality")
#: Event kinds: ``fired`` and ``resolved`` are delivered to sinks and audited;
#: ``suppressed`` (a firing held back by the cooldown) and ``deduplicated`` (a breach
#: of an alert already firing) are reported to the caller only.
KINDS = ("fired", "resolved", "suppressed", "deduplicated")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(
            f"the {name!r} parameter must be an integer >= {minimum}; got {value!r} instead",
            field=name,
        )
    return value


@dataclass(frozen=True)
class AlertRule:
    """A rule on one metric: ``metric comparison threshold`` is a breach.

    >>> AlertRule("p99-high", "latency_p99_ms", ">", 250.0, severity="critical",
    ...           category="infrastructure", for_windows=3, resolve_windows=2,
    ...           labels={"endpoint": "churn"})  # doctest: +ELLIPSIS
    AlertRule(name='p99-high', ...)
    """

    name: str
    metric: str
    comparison: str
    threshold: float
    severity: str = "warning"
    category: str = "infrastructure"
    for_windows: int = 1
    resolve_windows: int = 1
    cooldown_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise Invalid(
                "the 'name' parameter must be 1-128 letters, digits or _.:- starting with "
                f"a letter or digit; got {self.name!r} instead",
                field="name",
            )
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise Invalid(
                f"the 'metric' parameter must be a non-empty string; got {self.metric!r} instead",
                field="metric",
            )
        if self.comparison not in COMPARISONS:
            raise Invalid(
                f"the 'comparison' parameter must be one of {', '.join(COMPARISONS)}; "
                f"got {self.comparison!r} instead",
                field="comparison",
            )
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, int | float)
            or not math.isfinite(self.threshold)
        ):
            raise Invalid(
                f"the 'threshold' parameter must be a finite number; got {self.threshold!r} "
                "instead",
                field="threshold",
            )
        object.__setattr__(self, "threshold", float(self.threshold))
        if self.severity not in SEVERITIES:
            raise Invalid(
                f"the 'severity' parameter must be one of {', '.join(SEVERITIES)}; "
                f"got {self.severity!r} instead",
                field="severity",
            )
        if self.category not in CATEGORIES:
            raise Invalid(
                f"the 'category' parameter must be one of {', '.join(CATEGORIES)}; "
                f"got {self.category!r} instead",
                field="category",
            )
        _int_at_least("for_windows", self.for_windows, 1)
        _int_at_least("resolve_windows", self.resolve_windows, 1)
        if (
            isinstance(self.cooldown_s, bool)
            or not isinstance(self.cooldown_s, int | float)
            or not math.isfinite(self.cooldown_s)
            or self.cooldown_s < 0
        ):
            raise Invalid(
                "the 'cooldown_s' parameter must be a finite number of seconds >= 0; "
                f"got {self.cooldown_s!r} instead",
                field="cooldown_s",
            )
        object.__setattr__(self, "cooldown_s", float(self.cooldown_s))
        if not isinstance(self.labels, dict):
            raise Invalid(
                f"the 'labels' parameter must be a mapping of str to str; got {self.labels!r} "
                "instead",
                field="labels",
            )
        for key, val in self.labels.items():
            if not isinstance(key, str) or not _LABEL.match(key) or not isinstance(val, str):
                raise Invalid(
                    "each label must be a name of letters, digits or _ (not starting with a "
                    f"digit) mapped to a string; got {key!r}: {val!r} instead",
                    field="labels",
                )
        if not isinstance(self.description, str):
            raise Invalid(
                f"the 'description' parameter must be a string; got {self.description!r} instead",
                field="description",
            )

    def breached(self, value: float) -> bool:
        """Whether ``value`` breaches the rule (``metric comparison threshold``)."""
        if self.comparison == ">":
            return value > self.threshold
        if self.comparison == ">=":
            return value >= self.threshold
        if self.comparison == "<":
            return value < self.threshold
        return value <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain JSON-able data (``from_dict`` reads it back)."""
        return {
            "name": self.name,
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "severity": self.severity,
            "category": self.category,
            "for_windows": self.for_windows,
            "resolve_windows": self.resolve_windows,
            "cooldown_s": self.cooldown_s,
            "labels": dict(sorted(self.labels.items())),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AlertRule:
        """A rule from ``to_dict``'s shape; unknown or missing keys raise ``Invalid``."""
        if not isinstance(data, dict):
            raise Invalid(f"an alert rule must be a mapping; got {data!r} instead")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise Invalid(
                f"unknown alert rule keys {unknown}; expected some of {sorted(known)}",
                field=unknown[0],
            )
        missing = [k for k in ("name", "metric", "comparison", "threshold") if k not in data]
        if missing:
            raise Invalid(f"an alert rule needs {missing}; got keys {sorted(data)}")
        return cls(**data)


@dataclass(frozen=True)
class RuleState:
    """Where a rule stands between windows.

    ``breaches`` and ``clean`` count consecutive breaching and clean windows;
    ``firing_since`` is set while an alert is open; ``resolved_at`` is the last
    resolution (the cooldown runs from it).
    """

    breaches: int = 0
    clean: int = 0
    firing_since: float | None = None
    resolved_at: float | None = None
    last_value: float | None = None
    last_evaluated: float | None = None

    @property
    def firing(self) -> bool:
        """Whether an alert is open for the rule."""
        return self.firing_since is not None


@dataclass(frozen=True)
class AlertEvent:
    """What one evaluation produced for one rule."""

    kind: str
    rule: AlertRule
    value: float
    at: float
    #: when the incident started (the firing time), for ``resolved`` and ``deduplicated``
    started_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-able data, as sinks deliver it."""
        return {
            "kind": self.kind,
            "rule": self.rule.name,
            "metric": self.rule.metric,
            "comparison": self.rule.comparison,
            "threshold": self.rule.threshold,
            "value": self.value,
            "severity": self.rule.severity,
            "category": self.rule.category,
            "labels": dict(sorted(self.rule.labels.items())),
            "description": self.rule.description,
            "at": self.at,
            "started_at": self.started_at,
        }


def evaluate(
    rule: AlertRule, state: RuleState, value: float, now: float
) -> tuple[RuleState, list[AlertEvent]]:
    """One evaluation window of ``rule``: the new state and the events it produced.

    A NaN value (no data in the window) leaves the counters as they were. A firing
    held back by the cooldown keeps counting breaches, so the alert fires at the
    first window after the cooldown if the metric still breaches.

    >>> r = AlertRule("r", "m", ">", 1.0, for_windows=2)
    >>> s, ev = evaluate(r, RuleState(), 5.0, 0.0); [e.kind for e in ev]
    []
    >>> s, ev = evaluate(r, s, 5.0, 60.0); [e.kind for e in ev]
    ['fired']
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(
            f"the value of metric {rule.metric!r} must be a number; got {value!r} instead",
            field=rule.metric,
        )
    value = float(value)
    if math.isnan(value):
        return replace(state, last_evaluated=now), []
    base = replace(state, last_value=value, last_evaluated=now)
    if rule.breached(value):
        breaches, clean = state.breaches + 1, 0
        if state.firing:
            return (
                replace(base, breaches=breaches, clean=clean),
                [AlertEvent("deduplicated", rule, value, now, state.firing_since)],
            )
        if breaches < rule.for_windows:
            return replace(base, breaches=breaches, clean=clean), []
        if state.resolved_at is not None and now - state.resolved_at < rule.cooldown_s:
            return (
                replace(base, breaches=breaches, clean=clean),
                [AlertEvent("suppressed", rule, value, now)],
            )
        return (
            replace(base, breaches=breaches, clean=clean, firing_since=now),
            [AlertEvent("fired", rule, value, now, now)],
        )
    breaches, clean = 0, state.clean + 1
    if state.firing and clean >= rule.resolve_windows:
        return (
            replace(base, breaches=0, clean=clean, firing_since=None, resolved_at=now),
            [AlertEvent("resolved", rule, value, now, state.firing_since)],
        )
    return replace(base, breaches=breaches, clean=clean), []
