"""The MLflow search grammar for runs: ``metrics.auc > 0.9 and params.model = 'gbm'``.

Parsing is separate from SQL so every backend (and the REST client, which
passes the string through) agrees on what a filter means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopstack.errors import Invalid

__all__ = ["Comparison", "OrderKey", "parse_filter", "parse_order_by", "ATTRIBUTES"]

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
_OPS = ("!=", ">=", "<=", "=", ">", "<")
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
_NUMBER_OPS = {"=", "!=", ">", ">=", "<", "<="}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
    | (?P<ident>(?:[A-Za-z_][\w]*)\.(?:`[^`]+`|"[^"]+"|[\w\-./:]+)|[A-Za-z_][\w]*)
    | (?P<op>!=|>=|<=|=|>|<)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Comparison:
    kind: str  # metric | param | tag | attribute
    key: str  # for attributes: the runs column
    op: str
    value: float | str | tuple[str, ...]


@dataclass(frozen=True)
class OrderKey:
    kind: str
    key: str
    ascending: bool


def _split_identifier(
    ident: str, *, context: str, attributes: dict[str, str] = ATTRIBUTES, subject: str = "run"
) -> tuple[str, str]:
    if "." not in ident:
        if ident in attributes:
            return "attribute", attributes[ident]
        raise Invalid(
            f"expected an identifier such as metrics.<key>, params.<key>, tags.<key> or "
            f"attributes.<name> in the {context}; got {ident!r} instead",
            field=context,
        )
    prefix, key = ident.split(".", 1)
    kind = _KINDS.get(prefix.lower())
    if kind is None:
        raise Invalid(
            f"expected metrics., params., tags. or attributes. before a key in the "
            f"{context}; got {prefix!r} instead",
            field=context,
        )
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        key = key[1:-1]
    if kind == "attribute":
        if key not in attributes:
            raise Invalid(
                f"unknown {subject} attribute {key!r} in the {context}; expected one of "
                f"{sorted(set(attributes) - {'Created'})}",
                field=context,
            )
        key = attributes[key]
    return kind, key


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _tokens(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Invalid(
                f"could not parse the filter at position {pos}: {text[pos : pos + 30]!r}",
                field="filter",
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


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
    if not text or not text.strip():
        return []
    toks = _tokens(text)
    out: list[Comparison] = []
    i = 0

    def expect(cond: bool, what: str) -> None:
        if not cond:
            got = toks[i][1] if i < len(toks) else "the end of the filter"
            raise Invalid(f"expected {what} in the filter; got {got!r} instead", field="filter")

    while True:
        expect(i < len(toks) and toks[i][0] == "ident", "an identifier like metrics.auc")
        kind, key = _split_identifier(
            toks[i][1], context="filter", attributes=attributes, subject=subject
        )
        i += 1
        # operator: a symbol, or LIKE / ILIKE / IN / NOT IN
        expect(i < len(toks), "a comparison operator")
        tk, tv = toks[i]
        if tk == "op":
            op = tv
            i += 1
        elif tk == "ident" and tv.upper() in ("LIKE", "ILIKE", "IN"):
            op = tv.upper()
            i += 1
        elif (
            tk == "ident"
            and tv.upper() == "NOT"
            and i + 1 < len(toks)
            and toks[i + 1][1].upper() == "IN"
        ):
            op = "NOT IN"
            i += 2
        else:
            expect(False, "an operator (=, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN)")
        value: float | str | tuple[str, ...]
        if op in ("IN", "NOT IN"):
            expect(i < len(toks) and toks[i][0] == "lparen", "'(' after IN")
            i += 1
            items = []
            while True:
                expect(i < len(toks) and toks[i][0] == "string", "a quoted string in the IN list")
                items.append(_unquote(toks[i][1]))
                i += 1
                expect(i < len(toks) and toks[i][0] in ("comma", "rparen"), "',' or ')'")
                if toks[i][0] == "rparen":
                    i += 1
                    break
                i += 1
            value = tuple(items)
        else:
            expect(i < len(toks) and toks[i][0] in ("string", "number"), "a value")
            vk, vv = toks[i]
            i += 1
            value = float(vv) if vk == "number" else _unquote(vv)
        is_number = kind == "metric" or (kind == "attribute" and key in numeric)
        if is_number:
            if op not in _NUMBER_OPS or not isinstance(value, float):
                raise Invalid(
                    f"{kind} {key!r} is numeric: expected one of {sorted(_NUMBER_OPS)} "
                    f"and a number; got {op} {value!r}",
                    field="filter",
                )
        else:
            if op not in _STRING_OPS or isinstance(value, float):
                raise Invalid(
                    f"{kind} {key!r} is a string: expected one of {sorted(_STRING_OPS)} "
                    f"and a quoted value; got {op} {value!r}",
                    field="filter",
                )
        out.append(Comparison(kind, key, op, value))
        if i == len(toks):
            return out
        expect(toks[i][0] == "ident" and toks[i][1].upper() == "AND", "AND (OR is not supported)")
        i += 1


def parse_order_by(
    items: list[str] | None, *, attributes: dict[str, str] = ATTRIBUTES, subject: str = "run"
) -> list[OrderKey]:
    """``["metrics.auc DESC", "start_time"]`` as keys to sort by (ascending unless DESC)."""
    out = []
    for item in items or []:
        text = item.strip()
        ascending = True
        upper = text.upper()
        if upper.endswith(" DESC"):
            ascending, text = False, text[:-5].strip()
        elif upper.endswith(" ASC"):
            text = text[:-4].strip()
        kind, key = _split_identifier(
            text, context="order_by", attributes=attributes, subject=subject
        )
        out.append(OrderKey(kind, key, ascending))
    return out
