"""The tracking vocabulary: experiments, runs and what is logged to them."""

from __future__ import annotations

import functools
import itertools
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from loopstack.errors import Invalid, excerpt

__all__ = [
    "MAX_ENTITIES_PER_BATCH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_PER_RUN",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_TAGS_PER_RUN",
    "DatasetInput",
    "check_batch_size",
    "check_new_run_size",
    "check_run_size",
    "clean_params",
    "metric_rows",
    "clean_tags",
    "Experiment",
    "Metric",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "TERMINAL_STATUSES",
    "now_ms",
    "validate_key",
    "validate_metric",
    "validate_param_value",
    "metric_value_from_json",
    "metric_value_to_json",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
# MLflow's limits on one write (mlflow/utils/validation.py): a log-batch request holds at
# most 100 params, 100 tags and 1000 metrics, 1000 entities in all. Every store keeps the
# params and tags limits (the client splits a bigger batch, as MLflow's does); the metric
# limits are the MLflow routes' only, since loopstack's own buffer writes up to 10,000
# points in one transaction (the request-body limit bounds them on the wire).
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
# MLflow creates a run with any number of tags, and caps no run's params and tags in all;
# loopstack caps a new run's tags and params at MLflow's most entities in one write, and
# a run's at 10,000 each (its own choice: past that a run holds a table, not a config,
# and every read of the run pays for it).
MAX_PARAMS_PER_RUN = 10_000
MAX_TAGS_PER_RUN = 10_000
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-. /:]+$")


class RunStatus:
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)


TERMINAL_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED})


def now_ms() -> int:
    return int(time.time() * 1000)


_valid_keys: set[tuple[str, str]] = set()  # keys already checked (a hot path: every point)


def validate_key(key: Any, kind: str) -> str:
    """A metric, param or tag key: letters, digits, ``_ - . / :`` and spaces, at most 250 chars."""
    if isinstance(key, str) and (key, kind) in _valid_keys:
        return key
    if not isinstance(key, str) or not key:
        raise Invalid(
            f"a {kind} key must be a non-empty string; got {key!r} instead", field=f"{kind}.key"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise Invalid(
            f"a {kind} key must be at most {MAX_KEY_LENGTH} characters; got "
            f"{len(key)} ({key[:40]!r}...)",
            field=f"{kind}.key",
        )
    if not _KEY_RE.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise Invalid(
            f"the {kind} key {key!r} has characters outside the allowed set (letters, digits, "
            "underscores, dashes, periods, spaces, colons and slashes, no '..')",
            field=f"{kind}.key",
        )
    if len(_valid_keys) < 100_000:
        _valid_keys.add((key, kind))
    return key


def _over(what: str, limit: int, got: int) -> Invalid:
    # MLflow's words (mlflow/utils/validation.py _validate_batch_limit)
    return Invalid(
        f"A batch logging request can contain at most {limit} {what}. Got {got} {what}. "
        f"Please split up {what} across multiple requests and try again.",
        field=what.split(",")[0],
    )


def check_batch_size(
    *, metrics: int = 0, params: int = 0, tags: int = 0, mlflow: bool = False
) -> None:
    """Refuse a write of more params or tags than MLflow takes in one request (and, with
    ``mlflow``, more metrics or entities in all), in MLflow's words.

    >>> check_batch_size(tags=100_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    loopstack.errors.Invalid: A batch logging request can contain at most 100 tags. ...
    """
    each = MAX_PARAMS_TAGS_PER_BATCH
    counts = [("params", each, params), ("tags", each, tags)]
    if mlflow:
        total = metrics + params + tags
        counts.insert(0, ("metrics", MAX_METRICS_PER_BATCH, metrics))
        counts.append(("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, total))
    for what, limit, got in counts:
        if got > limit:
            raise _over(what, limit, got)


def check_new_run_size(*, params: int, tags: int) -> None:
    """Refuse a new run with more tags and params than MLflow takes in one write."""
    if params + tags > MAX_ENTITIES_PER_BATCH:
        raise Invalid(
            f"a new run can carry at most {MAX_ENTITIES_PER_BATCH} tags and params in all "
            f"(MLflow's most entities in one write); got {tags} tags and {params} params. "
            "Create the run with fewer and log the rest in batches of "
            f"{MAX_PARAMS_TAGS_PER_BATCH}",
            field="tags" if tags >= params else "params",
        )


def check_run_size(what: str, count: int) -> None:
    """Refuse a write that leaves a run with more params or tags than a run may hold."""
    limit = MAX_PARAMS_PER_RUN if what == "params" else MAX_TAGS_PER_RUN
    if count > limit:
        raise Invalid(
            f"a run can hold at most {limit} {what}; this write would leave it with {count}",
            field=what,
        )


def validate_param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise Invalid(
            f"the value of param {key!r} must be at most {MAX_PARAM_VALUE_LENGTH} "
            f"characters; got {len(text)}",
            field=f"params.{key}",
        )
    return text


def validate_tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise Invalid(
            f"the value of tag {key!r} must be at most {MAX_TAG_VALUE_LENGTH} "
            f"characters; got {len(text)}",
            field=f"tags.{key}",
        )
    return text


def metric_rows(run_id: str, metrics: list[Any]) -> list[tuple[str, str, float, int, int]]:
    """``(run_id, key, value, step, timestamp)`` rows for a batch, every point checked.

    The common batch (float values, int steps and timestamps, a few distinct keys) is
    checked in a few passes over plain lists; anything unusual goes point by point, so the
    error names the offending metric.
    """
    keys = [m.key for m in metrics]
    values = [m.value for m in metrics]
    steps = [m.step for m in metrics]
    stamps = [m.timestamp for m in metrics]
    try:
        for key in set(keys):
            validate_key(key, "metric")
        # map(type, ...) and set() run in C: a few microseconds per thousand points.
        fast = (
            set(map(type, values)) <= {float}
            and set(map(type, steps)) <= {int}
            and set(map(type, stamps)) <= {int}
        )
    except (TypeError, OverflowError, ValueError):
        fast = False
    if fast:
        return list(zip(itertools.repeat(run_id), keys, values, steps, stamps))
    return [(run_id, *validate_metric(m.key, m.value, m.step, m.timestamp)) for m in metrics]


@functools.lru_cache(maxsize=1024)
def _redacted(key: str, value: str) -> str:
    # Cached: every run of a process carries the same environment tags (the package list
    # alone is ~8,000 characters), and scanning them is the costly part of redaction.
    from loopstack.auth import redact

    return redact(key, value)


def clean_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    """Validated tags, with anything that looks like a credential redacted before storage."""
    return {
        validate_key(k, "tag"): _redacted(k, validate_tag_value(k, v))
        for k, v in (tags or {}).items()
    }


def clean_params(params: dict[str, Any] | None) -> dict[str, str]:
    """Validated params, with anything that looks like a credential redacted before storage."""
    return {
        validate_key(k, "param"): _redacted(k, validate_param_value(k, v))
        for k, v in (params or {}).items()
    }


def validate_metric(key: Any, value: Any, step: Any, timestamp: Any) -> tuple[str, float, int, int]:
    """Check one metric point; returns it normalised.

    NaN and the infinities are values like any other (a diverging loss is worth keeping),
    as in MLflow; what is not a number is refused, naming the metric.
    """
    key = validate_key(key, "metric")
    if type(value) is float and type(step) is int and type(timestamp) is int:
        return key, value, step, timestamp  # the common case, checked cheaply
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if not isinstance(value, np.number) or isinstance(value, np.bool_):
                raise TypeError
        except (ImportError, TypeError):
            raise Invalid(
                f"metric {key!r} must be a number; got {excerpt(value)} "
                f"({type(value).__name__}) instead",
                field=f"metrics.{key}",
            ) from None
    try:
        fvalue = float(value)
    except OverflowError:  # an int beyond a double's range
        fvalue = math.inf if value > 0 else -math.inf
    for name, v in (("step", step), ("timestamp", timestamp)):
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                import numpy as np

                if not isinstance(v, np.integer):
                    raise TypeError
            except (ImportError, TypeError):
                raise Invalid(
                    f"the {name} of metric {key!r} must be an integer; got {v!r}",
                    field=f"metrics.{key}.{name}",
                ) from None
    return key, fvalue, int(step), int(timestamp)


#: how JSON carries what it has no number for (protobuf's JSON mapping, as MLflow sends it)
NON_FINITE_JSON = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def metric_value_to_json(value: float) -> float | str:
    """A metric value for a JSON body: the number, or ``"NaN"``/``"Infinity"``/``"-Infinity"``.

    >>> metric_value_to_json(float("nan"))
    'NaN'
    """
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def metric_value_from_json(value: Any) -> Any:
    """The inverse of :func:`metric_value_to_json`; anything else is returned unchanged
    (so the validation that follows names what came)."""
    if isinstance(value, str):
        return NON_FINITE_JSON.get(value, value)
    return value


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class DatasetInput:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """MLflow's ``run.info`` shape, so code written against MLflow's client ports."""

    run_id: str
    run_uuid: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RunData:
    """MLflow's ``run.data`` shape: latest metric values, params and tags by key."""

    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(repr=False)
class Run:
    """A run with everything logged to it (metrics as their latest value).

    ``run.info`` and ``run.data`` give MLflow's shape of the same run.
    """

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    user_id: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    latest_metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[DatasetInput] = field(default_factory=list)

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def info(self) -> RunInfo:
        """The run's identity and state, as MLflow's ``Run.info``."""
        return RunInfo(
            self.run_id,
            self.run_id,
            self.experiment_id,
            self.run_name,
            self.user_id,
            self.status,
            self.start_time,
            self.end_time,
            self.artifact_uri,
            self.lifecycle_stage,
        )

    @property
    def data(self) -> RunData:
        """What was logged, as MLflow's ``Run.data``."""
        return RunData(dict(self.metrics), dict(self.params), dict(self.tags))

    def __repr__(self) -> str:
        # the tags hold the captured environment (kilobytes of package list): counted only
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in list(self.metrics.items())[:5])
        if len(self.metrics) > 5:
            metrics += f", … {len(self.metrics) - 5} more"
        return (
            f"Run(run_id={self.run_id!r}, run_name={self.run_name!r}, status={self.status!r}, "
            f"experiment_id={self.experiment_id!r}, metrics={{{metrics}}}, "
            f"params={len(self.params)}, tags={len(self.tags)}, inputs={len(self.inputs)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (a NaN or infinite metric value as a string)."""
        from dataclasses import asdict

        out = asdict(self)
        out["metrics"] = {k: metric_value_to_json(v) for k, v in self.metrics.items()}
        for m in out["latest_metrics"]:
            m["value"] = metric_value_to_json(m["value"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """The inverse of :meth:`to_dict`."""
        data = dict(data)
        data["metrics"] = {
            k: float(metric_value_from_json(v)) for k, v in data.get("metrics", {}).items()
        }
        data["latest_metrics"] = [
            Metric(m["key"], float(metric_value_from_json(m["value"])), m["step"], m["timestamp"])
            for m in data.get("latest_metrics", [])
        ]
        data["inputs"] = [DatasetInput(**d) for d in data.get("inputs", [])]
        return cls(**data)
