"""MLflow 3 logged models: the entity, and searching them with MLflow's filter grammar.

``name = 'model' AND metrics.accuracy > 0.9 AND params.alpha = '0.1'``, ordered by
attributes or metrics (a metric is a model's latest point, optionally on a dataset),
newest first when nothing else decides, paged by offset.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopstack.errors import Invalid
from loopstack.tracking._page_token import decode_token, encode_token
from loopstack.tracking._search import Comparison, parse_filter

__all__ = [
    "LoggedModel",
    "ModelMetric",
    "ModelStatus",
    "order_keys",
    "search_models",
]


class ModelStatus:
    """A logged model's upload state, named as MLflow's ``LoggedModelStatus``."""

    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    FAILED = "LOGGED_MODEL_UPLOAD_FAILED"
    ALL = (PENDING, READY, FAILED)


@dataclass(frozen=True)
class ModelMetric:
    """A metric point of a logged model, with the run and dataset it was measured on."""

    key: str
    value: float
    timestamp: int
    step: int
    run_id: str
    dataset_name: str = ""
    dataset_digest: str = ""


@dataclass
class LoggedModel:
    """An MLflow 3 logged model: its own artifact location, params, tags and metrics."""

    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    status: str
    status_message: str
    model_type: str
    source_run_id: str | None
    creator: str
    lifecycle_stage: str
    creation_timestamp: int
    last_updated_timestamp: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[ModelMetric] = field(default_factory=list)

    def latest_metric(self, key: str, dataset: dict[str, str] | None = None) -> float | None:
        """The newest point of ``key`` (latest timestamp, then step), on ``dataset`` if given."""
        points = [m for m in self.metrics if m.key == key and _on(m, dataset)]
        if not points:
            return None
        return min(points, key=lambda m: (-m.timestamp, -m.step, m.run_id)).value


#: attribute as written -> LoggedModel field
ATTRIBUTES = {
    "name": "name",
    "model_id": "model_id",
    "model_type": "model_type",
    "status": "status",
    "source_run_id": "source_run_id",
    "creation_timestamp": "creation_timestamp",
    "creation_time": "creation_timestamp",
    "creation_timestamp_ms": "creation_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "last_updated_time": "last_updated_timestamp",
    "last_updated_timestamp_ms": "last_updated_timestamp",
}
_NUMERIC = frozenset({"creation_timestamp", "last_updated_timestamp"})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "IN": lambda a, b: a in b,
    "NOT IN": lambda a, b: a not in b,
}
_MAX_RESULTS = 1000


def _on(metric: ModelMetric, dataset: dict[str, str] | None) -> bool:
    if not dataset:
        return True
    if metric.dataset_name != dataset.get("dataset_name"):
        return False
    digest = dataset.get("dataset_digest")
    return not digest or metric.dataset_digest == digest


def _like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _value(model: LoggedModel, kind: str, key: str, datasets: list[dict[str, str]]) -> Any:
    if kind == "metric":
        values = [model.latest_metric(key, d) for d in datasets or [{}]]
        found = [v for v in values if v is not None]
        return found[0] if found else None
    if kind == "param":
        return model.params.get(key)
    if kind == "tag":
        return model.tags.get(key)
    return getattr(model, key)


def _matches(model: LoggedModel, c: Comparison, datasets: list[dict[str, str]]) -> bool:
    actual = _value(model, c.kind, c.key, datasets)
    if actual is None:
        return False
    if c.op in ("LIKE", "ILIKE"):
        return _like(str(c.value), str(actual), ignore_case=c.op == "ILIKE")
    expected: Any = c.value
    if c.kind == "attribute" and c.key in _NUMERIC:
        expected = int(float(c.value))  # type: ignore[arg-type]
    return _COMPARE[c.op](actual, expected)


def order_keys(order_by: list[dict[str, Any]]) -> list[tuple[str, str, bool, dict[str, str]]]:
    """``[{"field_name": "metrics.auc", "ascending": False}]`` as (kind, key, asc, dataset)."""
    out: list[tuple[str, str, bool, dict[str, str]]] = []
    for item in order_by:
        name = str(item.get("field_name") or "")
        ascending = item.get("ascending", True) is not False
        dataset = {k: str(item[k]) for k in ("dataset_name", "dataset_digest") if item.get(k)}
        if "." not in name:
            if name not in ATTRIBUTES:
                raise Invalid(
                    f"Invalid order by field name: {name!r}; expected one of "
                    f"{sorted(ATTRIBUTES)} or metrics.<key>",
                    field="order_by",
                )
            out.append(("attribute", ATTRIBUTES[name], ascending, {}))
            continue
        entity, key = name.split(".", 1)
        if entity != "metrics" or not key:
            raise Invalid(
                f"Invalid order by field name: {name!r}. Only metrics are supported "
                "(metrics.<key>), besides the attributes",
                field="order_by",
            )
        out.append(("metric", key, ascending, dataset))
    return out


def search_models(
    models: list[LoggedModel],
    *,
    filter_string: str | None,
    datasets: list[dict[str, str]],
    order_by: list[dict[str, Any]],
    max_results: int | None,
    page_token: str | None,
) -> tuple[list[LoggedModel], str | None]:
    """One page of ``models`` matching the filter, in order, and the next page's token."""
    if any(not d.get("dataset_name") for d in datasets):
        raise Invalid("`dataset_name` in the `datasets` clause must be specified", field="datasets")
    limit = max_results or 100
    if not 0 < limit <= _MAX_RESULTS:
        raise Invalid(
            f"max_results must be between 1 and {_MAX_RESULTS}; got {max_results}",
            field="max_results",
        )
    clauses = parse_filter(
        filter_string, attributes=ATTRIBUTES, numeric=_NUMERIC, subject="logged model"
    )
    keys = order_keys(order_by)
    found = [m for m in models if all(_matches(m, c, datasets) for c in clauses)]
    # Stable sorts, least significant first: model_id, newest first, then each key.
    found.sort(key=lambda m: m.model_id)
    if not any(k[:2] == ("attribute", "creation_timestamp") for k in keys):
        found.sort(key=lambda m: m.creation_timestamp, reverse=True)
    for kind, key, ascending, dataset in reversed(keys):
        ds = [dataset] if dataset else []
        present = [m for m in found if _value(m, kind, key, ds) is not None]
        absent = [m for m in found if _value(m, kind, key, ds) is None]
        present.sort(key=lambda m: _value(m, kind, key, ds), reverse=not ascending)
        found = present + absent  # nulls last, as MLflow
    offset = decode_token(page_token)
    page = found[offset : offset + limit]
    token = encode_token(offset + limit) if offset + limit < len(found) else None
    return page, token
