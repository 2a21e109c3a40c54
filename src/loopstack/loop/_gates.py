"""Gate declarations: per-metric, per-slice thresholds, fairness bounds, the gates of a loop.

As TFX's Evaluator declares them: a value threshold bounds the challenger's own value
(``min_value`` / ``max_value``), a change threshold bounds its change against the
champion (``min_improvement`` / ``max_regression``, absolute or ``relative``), each in
the metric's direction (``higher_is_better`` comes from the metric). Everything is
checked when it is made: a gate naming an unknown metric, or options that contradict
each other, is refused with ``Invalid`` before anything is evaluated.

>>> gates = Gates(
...     primary=MetricThreshold("roc_auc", min_improvement=0.01),
...     guardrails=[MetricThreshold("log_loss", max_regression=0.02)],
...     fairness=Fairness("roc_auc", group="region", max_gap=0.05, floor=0.7),
... )
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any

from loopstack.errors import Invalid
from loopstack.loop._gates_metrics import BOUNDED, METRICS, task_of

__all__ = ["Fairness", "Gates", "MetricThreshold"]


def _metric(metric: Any, where: str) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise Invalid(
            f"the {where} metric must be one of {', '.join(sorted(METRICS))}; "
            f"got {metric!r} instead",
            field=where,
        )
    return metric


def _number(value: Any, name: str, metric: str, *, non_negative: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(
            f"the {name!r} of the {metric!r} gate must be a finite number; got {value!r} instead",
            field=name,
        )
    if non_negative and value < 0:
        raise Invalid(
            f"the {name!r} of the {metric!r} gate must be >= 0; got {value!r} instead",
            field=name,
        )
    return float(value)


def _bounded(value: float | None, name: str, metric: str) -> None:
    if value is not None and metric in BOUNDED and not 0.0 <= value <= 1.0:
        raise Invalid(
            f"{metric} lies in [0, 1], so the {name!r} of its gate must too; got {value!r} instead",
            field=name,
        )


@dataclass(frozen=True)
class MetricThreshold:
    """Bounds on one metric of the challenger, over every row or one slice of them.

    ``min_value`` / ``max_value`` bound the value itself. ``min_improvement`` asks the
    challenger to beat the champion by at least that much (in the metric's better
    direction); ``max_regression`` lets it be worse by at most that much. With
    ``relative`` a change is a share of the champion's value (0.02 = 2%). ``slice``
    (``{"column": value, ...}``) restricts the rows the metric is computed on.

    >>> MetricThreshold("accuracy", min_value=0.8, min_improvement=0.01)
    >>> MetricThreshold("rmse", max_regression=0.05, relative=True, slice={"region": "eu"})
    """

    metric: str
    higher_is_better: bool | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_improvement: float | None = None
    max_regression: float | None = None
    relative: bool = False
    slice: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        metric = _metric(self.metric, "gate")
        natural = METRICS[metric]
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", natural)
        elif self.higher_is_better is not natural:
            raise Invalid(
                f"{metric} is {'higher' if natural else 'lower'}-is-better; "
                f"got higher_is_better={self.higher_is_better!r} instead",
                field="higher_is_better",
            )
        for name in ("min_value", "max_value"):
            value = _number(getattr(self, name), name, metric)
            _bounded(value, name, metric)
            object.__setattr__(self, name, value)
        object.__setattr__(
            self, "min_improvement", _number(self.min_improvement, "min_improvement", metric)
        )
        object.__setattr__(
            self,
            "max_regression",
            _number(self.max_regression, "max_regression", metric, non_negative=True),
        )
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise Invalid(
                f"the {metric!r} gate's min_value ({self.min_value}) must not exceed its "
                f"max_value ({self.max_value})",
                field="min_value",
            )
        if self.min_improvement is not None and self.max_regression is not None:
            raise Invalid(
                f"the {metric!r} gate must declare min_improvement (beat the champion by) or "
                "max_regression (be worse by at most), not both; got both",
                field="max_regression",
            )
        if not self.has_change_threshold and self.min_value is None and self.max_value is None:
            raise Invalid(
                f"the {metric!r} gate must declare a threshold (min_value, max_value, "
                "min_improvement or max_regression); got none",
                field="metric",
            )
        if not isinstance(self.relative, bool):
            raise Invalid(
                f"'relative' must be True or False; got {self.relative!r} instead",
                field="relative",
            )
        if self.relative and not self.has_change_threshold:
            raise Invalid(
                f"the {metric!r} gate is relative but declares no change threshold "
                "(min_improvement or max_regression) for it to apply to",
                field="relative",
            )
        if self.slice is not None:
            if (
                not isinstance(self.slice, Mapping)
                or not self.slice
                or not all(isinstance(k, str) and k for k in self.slice)
            ):
                raise Invalid(
                    "a slice must be a non-empty mapping of column name to value, like "
                    f"{{'region': 'eu'}}; got {self.slice!r} instead",
                    field="slice",
                )
            object.__setattr__(self, "slice", dict(self.slice))

    @property
    def has_change_threshold(self) -> bool:
        return self.min_improvement is not None or self.max_regression is not None

    @property
    def name(self) -> str:
        """``accuracy`` or ``accuracy[region=eu]``: how reports and stored results name it."""
        if not self.slice:
            return self.metric
        return f"{self.metric}[{','.join(f'{k}={v}' for k, v in self.slice.items())}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "min_improvement": self.min_improvement,
            "max_regression": self.max_regression,
            "relative": self.relative,
            "slice": None if self.slice is None else dict(self.slice),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricThreshold:
        return cls(**_known(data, cls.__dataclass_fields__, "metric threshold"))


@dataclass(frozen=True)
class Fairness:
    """The metric per group of ``group`` (a column of the evaluation set): the gap between
    the best and the worst group at most ``max_gap``, and no group worse than ``floor``
    (below it for higher-is-better metrics, above it for lower-is-better ones).
    ``groups`` declares the groups (default: every value the column takes).

    >>> Fairness("recall", group="gender", max_gap=0.05, floor=0.6)
    """

    metric: str
    group: str
    max_gap: float | None = None
    floor: float | None = None
    groups: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        metric = _metric(self.metric, "fairness")
        if not isinstance(self.group, str) or not self.group:
            raise Invalid(
                f"the fairness gate's 'group' must name a column; got {self.group!r} instead",
                field="group",
            )
        object.__setattr__(
            self, "max_gap", _number(self.max_gap, "max_gap", metric, non_negative=True)
        )
        object.__setattr__(self, "floor", _number(self.floor, "floor", metric))
        _bounded(self.floor, "floor", metric)
        if self.max_gap is None and self.floor is None:
            raise Invalid(
                "the fairness gate must declare max_gap, floor or both; got neither",
                field="max_gap",
            )
        if self.groups is not None:
            if isinstance(self.groups, str | bytes) or not list(self.groups):
                raise Invalid(
                    "the fairness gate's 'groups' must be a non-empty list of values; "
                    f"got {self.groups!r} instead",
                    field="groups",
                )
            object.__setattr__(self, "groups", list(self.groups))

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "group": self.group,
            "max_gap": self.max_gap,
            "floor": self.floor,
            "groups": None if self.groups is None else list(self.groups),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fairness:
        return cls(**_known(data, cls.__dataclass_fields__, "fairness gate"))


@dataclass(frozen=True)
class Gates:
    """Every gate a challenger must pass before it may roll out.

    ``primary`` must declare a change threshold: the margin to beat the champion by
    (``min_improvement``) or the most it may lose (``max_regression``). With a champion
    the primary also needs a paired bootstrap (``n_bootstrap`` resamples, ``seed``) to
    find the change significant at ``significance`` (None turns the check off).
    ``guardrails`` are further thresholds; ``fairness`` bounds the gap across groups;
    ``require_validation`` asks for a passed validation of the evaluation data and
    ``require_lineage`` for a run with dataset inputs behind the version.
    ``positive`` is the positive class of a binary classifier (default: the second).
    """

    primary: MetricThreshold
    guardrails: Sequence[MetricThreshold] = field(default_factory=list)
    fairness: Fairness | None = None
    significance: float | None = 0.05
    n_bootstrap: int = 1000
    require_validation: bool = True
    require_lineage: bool = True
    seed: int = 0
    positive: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.primary, MetricThreshold):
            raise Invalid(
                "the 'primary' gate must be a MetricThreshold; "
                f"got {type(self.primary).__name__} instead",
                field="primary",
            )
        if not self.primary.has_change_threshold:
            raise Invalid(
                f"the primary gate ({self.primary.metric}) must declare min_improvement "
                "(the margin to beat the champion by) or max_regression; got neither",
                field="primary",
            )
        guardrails = list(self.guardrails)
        if not all(isinstance(g, MetricThreshold) for g in guardrails):
            raise Invalid(
                "every guardrail must be a MetricThreshold; got "
                f"{[type(g).__name__ for g in guardrails]} instead",
                field="guardrails",
            )
        object.__setattr__(self, "guardrails", guardrails)
        if self.fairness is not None and not isinstance(self.fairness, Fairness):
            raise Invalid(
                f"'fairness' must be a Fairness or None; got {type(self.fairness).__name__}",
                field="fairness",
            )
        metrics = [self.primary.metric, *(g.metric for g in guardrails)]
        if self.fairness is not None:
            metrics.append(self.fairness.metric)
        tasks = {task_of(m) for m in metrics}
        if len(tasks) > 1:
            raise Invalid(
                "the gates mix classification and regression metrics "
                f"({', '.join(metrics)}); a model is one or the other",
                field="guardrails",
            )
        names = [g.name for g in guardrails]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise Invalid(f"each guardrail must appear once; got {dup} twice", field="guardrails")
        if self.significance is not None and (
            isinstance(self.significance, bool)
            or not isinstance(self.significance, int | float)
            or not 0.0 < self.significance < 1.0
        ):
            raise Invalid(
                "'significance' must be a level between 0 and 1 (like 0.05) or None; "
                f"got {self.significance!r} instead",
                field="significance",
            )
        if isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, int):
            raise Invalid(
                f"'n_bootstrap' must be an integer; got {self.n_bootstrap!r} instead",
                field="n_bootstrap",
            )
        if not 100 <= self.n_bootstrap <= 100_000:
            raise Invalid(
                "'n_bootstrap' must be between 100 and 100000 resamples; "
                f"got {self.n_bootstrap} instead",
                field="n_bootstrap",
            )
        if self.significance is not None and self.significance < 1.0 / (self.n_bootstrap + 1):
            raise Invalid(
                f"with n_bootstrap={self.n_bootstrap} the smallest p-value is "
                f"1/{self.n_bootstrap + 1}, so significance={self.significance:g} could never "
                "pass; raise n_bootstrap or the significance level",
                field="significance",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise Invalid(f"'seed' must be an integer; got {self.seed!r} instead", field="seed")
        for name in ("require_validation", "require_lineage"):
            if not isinstance(getattr(self, name), bool):
                raise Invalid(
                    f"{name!r} must be True or False; got {getattr(self, name)!r} instead",
                    field=name,
                )

    @property
    def task(self) -> str:
        return task_of(self.primary.metric)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form; ``Gates.from_dict`` reads it back (and checks it again)."""
        return {
            "primary": self.primary.to_dict(),
            "guardrails": [g.to_dict() for g in self.guardrails],
            "fairness": None if self.fairness is None else self.fairness.to_dict(),
            "significance": self.significance,
            "n_bootstrap": self.n_bootstrap,
            "require_validation": self.require_validation,
            "require_lineage": self.require_lineage,
            "seed": self.seed,
            "positive": self.positive,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gates:
        """Gates from ``to_dict``'s form; unknown keys and bad values are ``Invalid``."""
        fields = _known(data, cls.__dataclass_fields__, "gates")
        if "primary" not in fields:
            raise Invalid("gates need a 'primary' threshold; got none", field="primary")
        fields["primary"] = MetricThreshold.from_dict(_mapping(fields["primary"], "primary"))
        fields["guardrails"] = [
            MetricThreshold.from_dict(_mapping(g, "guardrails"))
            for g in fields.get("guardrails") or []
        ]
        if fields.get("fairness") is not None:
            fields["fairness"] = Fairness.from_dict(_mapping(fields["fairness"], "fairness"))
        return cls(**fields)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid(
            f"{where!r} must be an object; got {type(value).__name__} instead", field=where
        )
    return value


def _known(data: Any, fields: Mapping[str, Any], what: str) -> dict[str, Any]:
    data = _mapping(data, what)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise Invalid(
            f"a {what} takes {', '.join(fields)}; got unknown keys {unknown}", field=unknown[0]
        )
    missing = [
        n
        for n, f in fields.items()
        if f.default is MISSING and f.default_factory is MISSING and n not in data
    ]
    if missing:
        raise Invalid(f"a {what} needs {missing}; got none", field=missing[0])
    return dict(data)
