"""A rollout's plan: an optional shadow phase, canary steps each with a bake time, the
guardrails watched at every step, and how many breaches in a row roll it back.

Checked whole when it is made (``Invalid`` saying what was expected and what came), and
kept as JSON with the rollout (``to_dict`` / ``from_dict``).

>>> RolloutPlan(
...     steps=[CanaryStep(0.05, bake_s=600), CanaryStep(0.25, 600), CanaryStep(1.0, 0)],
...     guardrails=[Guardrail("error_rate", "<=", 0.02), Guardrail("latency_p99_ms", "<", 250)],
... )  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopstack.errors import Invalid

__all__ = ["GUARDRAIL_METRICS", "OPERATORS", "CanaryStep", "Guardrail", "RolloutPlan"]

#: what a guardrail may watch, measured on the candidate over the plan's window
GUARDRAIL_METRICS: dict[str, str] = {
    "error_rate": "failed predictions / all predictions of the candidate (serving metrics)",
    "requests": "predictions the candidate answered (or, shadowing, copies it got)",
    "latency_p50_ms": "median latency of the candidate's predictions",
    "latency_p99_ms": "99th percentile latency of the candidate's predictions",
    "prediction_drift": "largest drift effect of the prediction and probabilities vs reference",
    "drift_share": "share of the input columns drifted vs the candidate's reference",
    "shadow_agreement": "share of rows where the candidate answered as the champion did",
    "accuracy": "accuracy on the labels that came back (feedback)",
    "precision": "precision on the labels that came back",
    "recall": "recall on the labels that came back",
    "f1": "F1 on the labels that came back",
    "roc_auc": "ROC AUC on the labels that came back",
    "log_loss": "log loss on the labels that came back",
    "mae": "mean absolute error on the labels that came back",
    "rmse": "root mean squared error on the labels that came back",
    "mape": "mean absolute percentage error on the labels that came back",
    "estimated_accuracy": "accuracy estimated from the probabilities (CBPE)",
    "estimated_precision": "precision estimated from the probabilities (CBPE)",
    "estimated_recall": "recall estimated from the probabilities (CBPE)",
    "estimated_f1": "F1 estimated from the probabilities (CBPE)",
    "estimated_roc_auc": "ROC AUC estimated from the probabilities (CBPE)",
}
OPERATORS = ("<", "<=", ">", ">=")


def _number(value: Any, what: str, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{what} must be a finite number; got {value!r} instead", field=field_name)
    return float(value)


@dataclass(frozen=True)
class CanaryStep:
    """One canary step: ``weight`` of the traffic (a share in (0, 1]; 1.0 is the whole,
    i.e. promotion) to the candidate for ``bake_s`` seconds."""

    weight: float
    bake_s: float = 60.0

    def __post_init__(self) -> None:
        weight = _number(self.weight, "a canary step's 'weight'", "weight")
        if not 0 < weight <= 1:
            raise Invalid(
                f"a canary step's 'weight' is a share of the traffic above 0 and at most 1 "
                f"(0.05 is 5%); got {self.weight!r} instead",
                field="weight",
            )
        bake = _number(self.bake_s, "a canary step's 'bake_s'", "bake_s")
        if bake < 0:
            raise Invalid(
                f"a canary step's 'bake_s' must be >= 0 seconds; got {self.bake_s!r} instead",
                field="bake_s",
            )
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bake_s", bake)


@dataclass(frozen=True)
class Guardrail:
    """A condition the candidate must keep: ``metric op threshold`` (``error_rate <=
    0.02``). A measurement that breaks it is a breach; a metric that could not be
    measured in the window (no labels yet, no traffic) is no breach."""

    metric: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.metric not in GUARDRAIL_METRICS:
            raise Invalid(
                f"a guardrail's metric must be one of {sorted(GUARDRAIL_METRICS)}; "
                f"got {self.metric!r} instead",
                field="metric",
            )
        if self.op not in OPERATORS:
            raise Invalid(
                f"a guardrail's 'op' must be one of {list(OPERATORS)}; got {self.op!r} instead",
                field="op",
            )
        threshold = _number(self.threshold, "a guardrail's 'threshold'", "threshold")
        object.__setattr__(self, "threshold", threshold)

    def holds(self, value: float) -> bool:
        """Does ``value`` keep the guardrail?"""
        if self.op == "<":
            return value < self.threshold
        if self.op == "<=":
            return value <= self.threshold
        if self.op == ">":
            return value > self.threshold
        return value >= self.threshold

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


def _positive(value: Any, name: str, *, whole: bool = False) -> Any:
    got = _number(value, f"the plan's {name!r}", name)
    if got <= 0 or (whole and got != int(got)):
        kind = "a whole number >= 1" if whole else "a number of seconds > 0"
        raise Invalid(f"the plan's {name!r} must be {kind}; got {value!r} instead", field=name)
    return int(got) if whole else got


@dataclass(frozen=True)
class RolloutPlan:
    """How a candidate version reaches the whole traffic of an endpoint.

    ``shadow_s``: a shadow phase first (copies of the traffic, answering nobody) for that
    many seconds; ``steps``: the canary weights, increasing (the last may be 1.0, else
    promotion follows the last step's bake); ``guardrails`` watched every
    ``interval_s`` over the last ``window_s``; ``breaches_to_rollback`` breaches in a
    row (of any one guardrail) roll back at once; ``require_approval``: wait for the
    registry's approval of moving ``production`` to the version first (the project's
    policy may approve at once); ``metrics_url``: a serving replica's ``/metrics``, where
    ``error_rate`` is read (without it, from the failed requests every replica logs);
    ``min_requests``: candidate predictions a window needs before a step may advance.
    """

    steps: list[CanaryStep] = field(default_factory=list)
    shadow_s: float | None = None
    guardrails: list[Guardrail] = field(default_factory=list)
    breaches_to_rollback: int = 2
    interval_s: float = 10.0
    window_s: float = 60.0
    require_approval: bool = True
    metrics_url: str | None = None
    min_requests: int = 0

    def __post_init__(self) -> None:
        steps = [
            s if isinstance(s, CanaryStep) else CanaryStep(**_keys(s, "step")) for s in self.steps
        ]
        rails = [
            g if isinstance(g, Guardrail) else Guardrail(**_keys(g, "guardrail"))
            for g in self.guardrails
        ]
        if self.shadow_s is not None:
            shadow = _number(self.shadow_s, "the plan's 'shadow_s'", "shadow_s")
            if shadow <= 0:
                raise Invalid(
                    f"the plan's 'shadow_s' must be > 0 seconds (or None: no shadow phase); "
                    f"got {self.shadow_s!r} instead",
                    field="shadow_s",
                )
            object.__setattr__(self, "shadow_s", shadow)
        if not steps and self.shadow_s is None:
            raise Invalid(
                "a rollout plan needs canary steps or a shadow phase; got neither", field="steps"
            )
        weights = [s.weight for s in steps]
        if any(b <= a for a, b in zip(weights, weights[1:], strict=False)):
            raise Invalid(
                f"the canary steps' weights must increase; got {weights} instead", field="steps"
            )
        if not isinstance(self.require_approval, bool):
            raise Invalid(
                f"the plan's 'require_approval' must be true or false; got "
                f"{self.require_approval!r} instead",
                field="require_approval",
            )
        if self.metrics_url is not None and not str(self.metrics_url).startswith(
            ("http://", "https://")
        ):
            raise Invalid(
                f"the plan's 'metrics_url' must be an http(s) URL of a serving replica's "
                f"/metrics; got {self.metrics_url!r} instead",
                field="metrics_url",
            )
        if (
            isinstance(self.min_requests, bool)
            or not isinstance(self.min_requests, int)
            or (self.min_requests < 0)
        ):
            raise Invalid(
                f"the plan's 'min_requests' must be a whole number >= 0; got "
                f"{self.min_requests!r} instead",
                field="min_requests",
            )
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "guardrails", rails)
        object.__setattr__(
            self,
            "breaches_to_rollback",
            _positive(self.breaches_to_rollback, "breaches_to_rollback", whole=True),
        )
        object.__setattr__(self, "interval_s", _positive(self.interval_s, "interval_s"))
        object.__setattr__(self, "window_s", _positive(self.window_s, "window_s"))

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-able values."""
        return {
            "steps": [{"weight": s.weight, "bake_s": s.bake_s} for s in self.steps],
            "shadow_s": self.shadow_s,
            "guardrails": [
                {"metric": g.metric, "op": g.op, "threshold": g.threshold} for g in self.guardrails
            ],
            "breaches_to_rollback": self.breaches_to_rollback,
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "require_approval": self.require_approval,
            "metrics_url": self.metrics_url,
            "min_requests": self.min_requests,
        }

    @classmethod
    def from_dict(cls, got: Any) -> RolloutPlan:
        """The plan a ``to_dict`` made (or a request body or file held); unknown keys are
        refused, naming the known ones."""
        return cls(**_keys(got, "plan"))


_FIELDS = {
    "plan": {
        "steps",
        "shadow_s",
        "guardrails",
        "breaches_to_rollback",
        "interval_s",
        "window_s",
        "require_approval",
        "metrics_url",
        "min_requests",
    },
    "step": {"weight", "bake_s"},
    "guardrail": {"metric", "op", "threshold"},
}


_REQUIRED = {"plan": set(), "step": {"weight"}, "guardrail": {"metric", "op", "threshold"}}


def _keys(got: Any, what: str) -> dict[str, Any]:
    known = _FIELDS[what]
    if not isinstance(got, dict):
        raise Invalid(
            f"a {what} is an object with keys {sorted(known)}; got {got!r} instead", field=what
        )
    unknown = sorted(set(got) - known)
    if unknown:
        raise Invalid(
            f"a {what} has no key(s) {unknown}; its keys are {sorted(known)}", field=unknown[0]
        )
    missing = sorted(_REQUIRED[what] - set(got))
    if missing:
        raise Invalid(f"a {what} needs key(s) {missing}; got {sorted(got)}", field=missing[0])
    return dict(got)
