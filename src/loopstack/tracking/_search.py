"""The MLflow search grammar for runs: ``metrics.auc > 0.9 and params.model = 'gbm'``.

The language is the shared one in ``_filter``; this module says what a run's identifiers
name. Parsing is separate from SQL so every backend (and the REST client, which passes
the string through) agrees on what a filter means.
"""

from __future__ import annotations

from collections.abc import Callable

from loopstack.errors import Invalid
from loopstack.tracking._filter import (
    NUMBER_OPS,
    STRING_OPS,
    Clause,
    Field,
    OrderKey,
    split_identifier,
)
from loopstack.tracking._filter import parse_filter as _parse_filter
from loopstack.tracking._filter import parse_order_by as _parse_order_by

__all__ = ["ATTRIBUTES", "Comparison", "OrderKey", "parse_filter", "parse_order_by"]

#: a filter clause over runs (``kind``: metric, param, tag or attribute; an attribute's
#: ``key`` is the runs column)
Comparison = Clause

#: attribute name as written -> runs column
ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
    "experiment_id": "experiment_id",
    "created": "start_time",
    "Created": "start_time",
}
_NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
_KINDS = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
_RUN_STRING_OPS = STRING_OPS | {"IN", "NOT IN"}


def _resolver(
    context: str,
    attributes: dict[str, str] = ATTRIBUTES,
    numeric: frozenset[str] | set[str] = _NUMERIC_ATTRIBUTES,
    subject: str = "run",
) -> Callable[[str], Field]:
    def resolve(ident: str) -> Field:
        prefix, key = split_identifier(ident)
        if prefix is None:
            if key not in attributes:
                raise Invalid(
                    f"expected an identifier such as metrics.<key>, params.<key>, tags.<key> "
                    f"or attributes.<name> in the {context}; got {ident!r} instead",
                    field=context,
                )
            kind = "attribute"
        else:
            found = _KINDS.get(prefix.lower())
            if found is None:
                raise Invalid(
                    f"expected metrics., params., tags. or attributes. before a key in the "
                    f"{context}; got {prefix!r} instead",
                    field=context,
                )
            kind = found
        if kind == "attribute":
            if key not in attributes:
                raise Invalid(
                    f"unknown {subject} attribute {key!r} in the {context}; expected one of "
                    f"{sorted(set(attributes) - {'Created'})}",
                    field=context,
                )
            key = attributes[key]
        if kind == "metric" or (kind == "attribute" and key in numeric):
            return Field(kind, key, NUMBER_OPS, float)
        return Field(kind, key, _RUN_STRING_OPS)

    return resolve


def parse_filter(
    text: str | None,
    *,
    attributes: dict[str, str] = ATTRIBUTES,
    numeric: frozenset[str] | set[str] = _NUMERIC_ATTRIBUTES,
    subject: str = "run",
) -> list[Comparison]:
    """Parse ``<ident> <op> <value> [AND ...]``; raise Invalid naming what was expected.

    ``attributes`` (as written -> column), ``numeric`` and ``subject`` describe what is
    searched: runs by default, or another entity with its own attribute names.
    """
    return _parse_filter(text, _resolver("filter", attributes, numeric, subject), "filter")


def parse_order_by(items: list[str] | None) -> list[OrderKey]:
    """``["metrics.auc DESC", "start_time"]`` -> keys; a clause that is not
    ``<key> [ASC|DESC]`` is refused."""
    return _parse_order_by(items, _resolver("order_by"), "run")
