"""MLflow's registry search grammar: ``name LIKE 'churn%' AND tags.team = 'risk'``.

Registered models filter on ``name`` and ``tags.<key>``; model versions also on
``run_id`` (``=``, ``!=``, ``IN (...)``), ``source_path`` and ``version_number``
(compared as a number). Clauses are joined by ``AND``; ``LIKE`` is case-sensitive
and ``ILIKE`` is not, with ``%`` and ``_`` as wildcards, as in MLflow. Filtering and
ordering happen in Python over the registry's rows; pages are offsets in an opaque token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from loopstack.errors import Invalid
from loopstack.registry import ModelVersion, RegisteredModel
from loopstack.server.routes._mlflow_experiment_search import (
    COMPARE,
    decode_token,
    encode_token,
    like,
)
from loopstack.server.routes._mlflow_registry_render import source_uri

__all__ = [
    "PROMPT_TAG",
    "Clause",
    "equality",
    "page",
    "parse_filter",
    "search_model_versions",
    "search_registered_models",
]

T = TypeVar("T")

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<number>[-+]?\d+)
    | (?P<ident>[A-Za-z_]\w*(?:\.(?:`[^`]+`|"[^"]+"|[\w\-./:]+))?)
    | (?P<op>!=|<>|>=|<=|=|>|<)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_STRING_OPS: tuple[str, ...] = ("=", "!=", "LIKE", "ILIKE")
_NUMBER_OPS: tuple[str, ...] = ("=", "!=", ">", ">=", "<", "<=")
#: searchable attribute -> the operators MLflow allows on it
MODEL_FIELDS: dict[str, tuple[str, ...]] = {"name": _STRING_OPS}
VERSION_FIELDS: dict[str, tuple[str, ...]] = {
    "name": _STRING_OPS,
    "run_id": ("=", "!=", "IN"),
    "source_path": _STRING_OPS,
    "version_number": _NUMBER_OPS,
}
MODEL_ORDER = ("name", "creation_timestamp", "last_updated_timestamp")
VERSION_ORDER = ("name", "version_number", "creation_timestamp", "last_updated_timestamp")
#: the tag MLflow marks prompts with (they live in the model registry on an MLflow server)
PROMPT_TAG = "mlflow.prompt.is_prompt"
_VERSION_DEFAULT_ORDER = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]


@dataclass(frozen=True)
class Clause:
    kind: str  # attribute | tag
    key: str
    op: str
    value: str | int | tuple[str, ...]

    def matches(self, attrs: dict[str, Any], tags: dict[str, str]) -> bool:
        actual = tags.get(self.key) if self.kind == "tag" else attrs.get(self.key)
        if actual is None:
            return False
        if self.op == "IN":
            return actual in self.value  # type: ignore[operator]
        if self.op in ("LIKE", "ILIKE"):
            return like(str(self.value), str(actual), ignore_case=self.op == "ILIKE")
        return bool(COMPARE[self.op](actual, self.value))


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


def _tokens(text: str, what: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Invalid(
                f"could not parse the {what} filter at position {pos}: {text[pos : pos + 30]!r}",
                field="filter",
            )
        toks.append((m.lastgroup or "", m.group(m.lastgroup or 0)))
        pos = m.end()
    return toks


def _identifier(ident: str, fields: dict[str, tuple[str, ...]], what: str) -> tuple[str, str]:
    prefix, dot, key = ident.partition(".")
    if not dot:
        prefix, key = "attributes", ident
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        key = key[1:-1]
    if prefix.lower() in ("tag", "tags"):
        return "tag", key
    if prefix.lower() in ("attribute", "attributes", "attr") and key in fields:
        return "attribute", key
    raise Invalid(
        f"expected one of {sorted(fields)} or tags.<key> in the {what} filter; got "
        f"{ident!r} instead",
        field="filter",
    )


def parse_filter(text: str | None, fields: dict[str, tuple[str, ...]], what: str) -> list[Clause]:
    """``name = 'a' AND tags.x LIKE 'b%'`` -> clauses; anything else is a clear 400."""
    if not text or not text.strip():
        return []
    toks = _tokens(text.strip(), what)
    clauses: list[Clause] = []
    i = 0
    while True:
        if i + 3 > len(toks) or toks[i][0] != "ident":
            rest = " ".join(t for _, t in toks[i:]) or "nothing"
            raise Invalid(
                f"expected '<field> <operator> <value>' in the {what} filter; got {rest!r}",
                field="filter",
            )
        kind, key = _identifier(toks[i][1], fields, what)
        ok, ov = toks[i + 1]
        op = {"<>": "!="}.get(ov, ov) if ok == "op" else ov.upper()
        allowed = _STRING_OPS if kind == "tag" else fields[key]
        if op not in allowed:
            raise Invalid(
                f"{toks[i][1]} takes one of {', '.join(allowed)}; got {ov!r} in the {what} filter",
                field="filter",
            )
        i += 2
        value: str | int | tuple[str, ...]
        if op == "IN":
            value, i = _in_list(toks, i, key, what)
        else:
            vk, vv = toks[i]
            numeric = allowed is _NUMBER_OPS
            if (vk == "number") != numeric or vk not in ("number", "string"):
                expected = "a whole number" if numeric else "a quoted string"
                raise Invalid(
                    f"{toks[i - 2][1]} is compared with {expected}; got {vv!r} in "
                    f"the {what} filter",
                    field="filter",
                )
            value = int(vv) if numeric else _unquote(vv)
            i += 1
        clauses.append(Clause(kind, key, op, value))
        if i == len(toks):
            return clauses
        if toks[i][0] != "ident" or toks[i][1].upper() != "AND":
            raise Invalid(
                f"expected AND between {what} filter clauses (OR is not supported); "
                f"got {toks[i][1]!r}",
                field="filter",
            )
        i += 1


def _in_list(
    toks: list[tuple[str, str]], i: int, key: str, what: str
) -> tuple[tuple[str, ...], int]:
    bad = Invalid(
        f"{key} IN takes a parenthesised list of quoted strings, like "
        f"('a', 'b'), in the {what} filter",
        field="filter",
    )
    if i >= len(toks) or toks[i] != ("punct", "("):
        raise bad
    values: list[str] = []
    i += 1
    while True:
        if i + 1 >= len(toks) or toks[i][0] != "string":
            raise bad
        values.append(_unquote(toks[i][1]))
        sep = toks[i + 1]
        i += 2
        if sep == ("punct", ")"):
            return tuple(values), i
        if sep != ("punct", ","):
            raise bad


def equality(clauses: list[Clause], key: str) -> str | None:
    """The value an ``attribute = '...'`` clause pins ``key`` to, to narrow the query."""
    for c in clauses:
        if c.kind == "attribute" and c.key == key and c.op == "=" and isinstance(c.value, str):
            return c.value
    return None


def _order_keys(order_by: Sequence[str], allowed: tuple[str, ...]) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for item in order_by:
        text, ascending = item.strip(), True
        if text.upper().endswith(" DESC"):
            text, ascending = text[:-5].strip(), False
        elif text.upper().endswith(" ASC"):
            text = text[:-4].strip()
        if text.lower().startswith(("attributes.", "attribute.", "attr.")):
            text = text.split(".", 1)[1]
        if text == "timestamp":  # MLflow's older spelling
            text = "last_updated_timestamp"
        if text not in allowed:
            raise Invalid(
                f"expected one of {list(allowed)} (with ASC or DESC) in order_by; got "
                f"{item!r} instead",
                field="order_by",
            )
        keys.append((text, ascending))
    return keys


def _sorted(
    items: list[T], keys: list[tuple[str, bool]], attrs: Callable[[T], dict[str, Any]]
) -> list[T]:
    out = list(items)
    for key, ascending in reversed(keys):
        out.sort(key=lambda x, key=key: attrs(x)[key], reverse=not ascending)  # type: ignore
    return out


def page(items: list[T], max_results: int, page_token: str | None) -> tuple[list[T], str | None]:
    offset = decode_token(page_token)
    end = offset + max_results
    return items[offset:end], (encode_token(end) if end < len(items) else None)


def _model_attrs(m: RegisteredModel) -> dict[str, Any]:
    return {
        "name": m.name,
        "creation_timestamp": m.created_at,
        "last_updated_timestamp": m.updated_at,
    }


def _version_attrs(v: ModelVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "run_id": v.run_id or "",
        "source_path": source_uri(v.source),
        "version_number": v.version,
        "creation_timestamp": v.created_at,
        "last_updated_timestamp": v.updated_at,
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
    return is_prompt == prompts and all(c.matches(attrs, tags) for c in rest)


def search_registered_models(
    models: list[RegisteredModel], clauses: list[Clause], order_by: Sequence[str]
) -> list[RegisteredModel]:
    """Matching models, ordered; MLflow breaks ties (and orders by default) on the name."""
    keys = _order_keys(order_by, MODEL_ORDER)
    if not any(k == "name" for k, _ in keys):
        keys.append(("name", True))
    found = [m for m in models if _keep(m.tags, _model_attrs(m), clauses)]
    return _sorted(found, keys, _model_attrs)


def search_model_versions(
    versions: list[ModelVersion], clauses: list[Clause], order_by: Sequence[str]
) -> list[ModelVersion]:
    """Matching versions; by default the most recently updated first, as in MLflow."""
    keys = _order_keys(order_by or _VERSION_DEFAULT_ORDER, VERSION_ORDER)
    found = [v for v in versions if _keep(v.tags, _version_attrs(v), clauses)]
    return _sorted(found, keys, _version_attrs)
