"""Searching registered models and model versions: ``name LIKE 'churn%' AND tags.team = 'risk'``.

The filter language is tracking's (``_filter``); this module says what a model's and a
version's identifiers name, as MLflow does: models filter on ``name`` and ``tags.<key>``;
versions also on ``run_id`` (``=``, ``!=``, ``IN (...)``), ``source_path`` and
``version_number`` (a whole number). ``LIKE`` is case-sensitive and ``ILIKE`` is not.
Filtering and ordering happen in Python over the registry's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from loopstack.errors import Invalid
from loopstack.registry._entities import ModelVersion, RegisteredModel
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

__all__ = [
    "MODEL_FIELDS",
    "PROMPT_TAG",
    "VERSION_FIELDS",
    "equality",
    "page",
    "parse_registry_filter",
    "search_model_versions",
    "search_registered_models",
]

T = TypeVar("T")

#: searchable attribute -> the field it is (operators, how a number is read)
MODEL_FIELDS: dict[str, Field] = {"name": Field("attribute", "name")}
VERSION_FIELDS: dict[str, Field] = {
    "name": Field("attribute", "name"),
    "run_id": Field("attribute", "run_id", frozenset({"=", "!=", "IN"})),
    "source_path": Field("attribute", "source_path"),
    "version_number": Field("attribute", "version_number", NUMBER_OPS, int),
}
MODEL_ORDER = ("name", "creation_timestamp", "last_updated_timestamp")
VERSION_ORDER = ("name", "version_number", "creation_timestamp", "last_updated_timestamp")
#: the tag MLflow marks prompts with (they live in the model registry on an MLflow server)
PROMPT_TAG = "mlflow.prompt.is_prompt"
_VERSION_DEFAULT_ORDER = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
_ATTRIBUTE_PREFIXES = ("attribute", "attributes", "attr")


def _filter_resolver(fields: dict[str, Field], what: str) -> Callable[[str], Field]:
    def resolve(ident: str) -> Field:
        prefix, key = split_identifier(ident)
        if prefix is not None and prefix.lower() in ("tag", "tags"):
            return Field("tag", key, STRING_OPS)
        if (prefix is None or prefix.lower() in _ATTRIBUTE_PREFIXES) and key in fields:
            return fields[key]
        raise Invalid(
            f"expected one of {sorted(fields)} or tags.<key> in the {what} filter; got "
            f"{ident!r} instead",
            field="filter",
        )

    return resolve


def _order_resolver(allowed: tuple[str, ...], what: str) -> Callable[[str], Field]:
    def resolve(ident: str) -> Field:
        prefix, key = split_identifier(ident)
        if key == "timestamp":  # MLflow's older spelling
            key = "last_updated_timestamp"
        if (prefix is None or prefix.lower() in _ATTRIBUTE_PREFIXES) and key in allowed:
            return Field("attribute", key)
        raise Invalid(
            f"expected one of {list(allowed)} in the {what} order_by; got {ident!r}",
            field="order_by",
        )

    return resolve


def parse_registry_filter(text: str | None, fields: dict[str, Field], what: str) -> list[Clause]:
    """``name = 'a' AND tags.x LIKE 'b%'`` -> clauses; anything else is a clear Invalid."""
    return parse_filter(text, _filter_resolver(fields, what), f"{what} filter")


def equality(clauses: list[Clause], key: str) -> str | None:
    """The value an ``attribute = '...'`` clause pins ``key`` to, to narrow the query."""
    for c in clauses:
        if c.kind == "attribute" and c.key == key and c.op == "=" and isinstance(c.value, str):
            return c.value
    return None


def _sorted(
    items: list[T], keys: list[tuple[str, bool]], attrs: Callable[[T], dict[str, Any]]
) -> list[T]:
    out = list(items)
    for key, ascending in reversed(keys):
        out.sort(key=lambda x, key=key: attrs(x)[key], reverse=not ascending)  # type: ignore
    return out


def page(items: list[T], max_results: int, page_token: str | None) -> tuple[list[T], str | None]:
    """One page of ``items`` from the offset in ``page_token``, and the next page's token."""
    offset = decode_token(page_token)
    end = offset + max_results
    return items[offset:end], (encode_token(end) if end < len(items) else None)


def _model_attrs(m: RegisteredModel) -> dict[str, Any]:
    return {
        "name": m.name,
        "creation_timestamp": m.created_at,
        "last_updated_timestamp": m.updated_at,
    }


def _prompt_filter(clauses: list[Clause]) -> tuple[list[Clause], bool]:
    """Split off MLflow's prompt clause: (the other clauses, whether prompts are wanted).

    MLflow 3's client adds ``tags.`mlflow.prompt.is_prompt` != 'true'`` to every model
    search. Models carry no such tag, so, as on an MLflow server, the clause means "not a
    prompt" (a missing tag included) rather than "has the tag with another value".
    """
    rest, wanted = [], False
    for c in clauses:
        if c.kind == "tag" and c.key == PROMPT_TAG:
            value = str(c.value).lower()
            wanted = (c.op == "=" and value == "true") or (c.op == "!=" and value == "false")
        else:
            rest.append(c)
    return rest, wanted


def _keep(tags: dict[str, str], attrs: dict[str, Any], clauses: list[Clause]) -> bool:
    rest, prompts = _prompt_filter(clauses)
    is_prompt = tags.get(PROMPT_TAG, "").lower() == "true"
    return is_prompt == prompts and all(
        c.matches(tags.get(c.key) if c.kind == "tag" else attrs.get(c.key)) for c in rest
    )


def search_registered_models(
    models: list[RegisteredModel], clauses: list[Clause], order_by: Sequence[str]
) -> list[RegisteredModel]:
    """Matching models, ordered; MLflow breaks ties (and orders by default) on the name."""
    order = parse_order_by(order_by, _order_resolver(MODEL_ORDER, "registered model"), "model")
    keys = [(k.key, k.ascending) for k in order]
    if not any(k == "name" for k, _ in keys):
        keys.append(("name", True))
    found = [m for m in models if _keep(m.tags, _model_attrs(m), clauses)]
    return _sorted(found, keys, _model_attrs)


def search_model_versions(
    versions: list[ModelVersion],
    clauses: list[Clause],
    order_by: Sequence[str],
    *,
    source_path: Callable[[str], str] = str,
) -> list[ModelVersion]:
    """Matching versions; by default the most recently updated first, as in MLflow.

    ``source_path`` renders a version's stored source as the filter sees it (the MLflow
    API compares against the URI it shows clients).
    """

    def attrs(v: ModelVersion) -> dict[str, Any]:
        return {
            "name": v.name,
            "run_id": v.run_id or "",
            "source_path": source_path(v.source),
            "version_number": v.version,
            "creation_timestamp": v.created_at,
            "last_updated_timestamp": v.updated_at,
        }

    resolve = _order_resolver(VERSION_ORDER, "model version")
    keys = [(k.key, k.ascending) for k in parse_order_by(order_by, resolve, "model version")]
    if not keys:
        keys = [(k.key, k.ascending) for k in parse_order_by(_VERSION_DEFAULT_ORDER, resolve, "")]
    found = [v for v in versions if _keep(v.tags, attrs(v), clauses)]
    return _sorted(found, keys, attrs)
