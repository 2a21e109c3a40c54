"""MLflow's experiment search: ``name LIKE 'fraud-%' AND tags.team = 'risk'``, ordering, pages.

Experiments are few, so the filter is applied in Python over the store's list; the
identifiers are MLflow's: ``name``, ``creation_time``, ``last_update_time`` (with an
optional ``attributes.`` prefix) and ``tags.<key>``, in the shared filter language.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopstack.errors import Invalid
from loopstack.tracking._entities import Experiment
from loopstack.tracking._filter import (
    NUMBER_OPS,
    STRING_OPS,
    Clause,
    Field,
    parse_filter,
    parse_order_by,
    split_identifier,
)
from loopstack.tracking._page_token import decode_token, encode_token

__all__ = ["parse_experiment_filter", "search_experiments", "sort_experiments"]

_NUMBER_ATTRS = {"creation_time", "last_update_time"}
_ORDER_ATTRS = {"name", "experiment_id", "creation_time", "last_update_time"}
_ATTRIBUTE_PREFIXES = ("attribute", "attributes", "attr")


def _filter_field(ident: str) -> Field:
    prefix, key = split_identifier(ident)
    if prefix is not None and prefix.lower() in ("tag", "tags"):
        return Field("tag", key)
    if prefix is None or prefix.lower() in _ATTRIBUTE_PREFIXES:
        if key == "name":
            return Field("attribute", key)
        if key in _NUMBER_ATTRS:
            return Field("attribute", key, NUMBER_OPS, lambda t: int(float(t)))
    raise Invalid(
        f"expected name, creation_time, last_update_time or tags.<key> in the "
        f"experiment filter; got {ident!r} instead",
        field="filter",
    )


def _order_field(ident: str) -> Field:
    prefix, key = split_identifier(ident)
    if (prefix is None or prefix.lower() in _ATTRIBUTE_PREFIXES) and key in _ORDER_ATTRS:
        return Field("attribute", key, STRING_OPS)
    raise Invalid(
        f"expected one of {sorted(_ORDER_ATTRS)} in the experiment order_by; got {ident!r}",
        field="order_by",
    )


def parse_experiment_filter(text: str | None) -> list[Clause]:
    """The clauses of an experiment filter; a clear Invalid for anything else."""
    return parse_filter(text, _filter_field, "experiment filter")


def _matches(clause: Clause, exp: Experiment) -> bool:
    actual = exp.tags.get(clause.key) if clause.kind == "tag" else getattr(exp, clause.key)
    return clause.matches(actual)


def sort_experiments(exps: list[Experiment], order_by: Sequence[str]) -> list[Experiment]:
    """MLflow's default order is newest first; ties break on the id, ascending."""
    keys = [(k.key, k.ascending) for k in parse_order_by(order_by, _order_field, "experiment")]
    if not keys:
        keys = [("creation_time", False)]
    out = sorted(exps, key=lambda e: int(e.experiment_id))
    for attr, ascending in reversed(keys):

        def value(e: Experiment, attr: str = attr) -> object:
            return int(e.experiment_id) if attr == "experiment_id" else getattr(e, attr)

        out.sort(key=value, reverse=not ascending)  # type: ignore[arg-type]
    return out


def search_experiments(
    exps: list[Experiment],
    *,
    filter_string: str | None,
    order_by: Sequence[str],
    max_results: int,
    page_token: str | None,
) -> tuple[list[Experiment], str | None]:
    """One page of the experiments that match, in order, and the token of the next page."""
    clauses = parse_experiment_filter(filter_string)
    found = [e for e in exps if all(_matches(c, e) for c in clauses)]
    found = sort_experiments(found, order_by)
    offset = decode_token(page_token)
    page = found[offset : offset + max_results]
    more = offset + max_results < len(found)
    return page, encode_token(offset + max_results) if more else None
