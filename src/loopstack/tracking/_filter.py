"""MLflow's one filter language, shared by every search (runs, experiments, models, versions).

A filter is ``<identifier> <operator> <value>`` clauses joined by ``AND``; an ``order_by``
item is ``<identifier> [ASC|DESC]``. What an identifier may name (``metrics.auc``,
``name``, ``tags.team``, ...) and which operators it takes is the caller's: each search
passes a ``resolve`` function from the identifier as written to a :class:`Field`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopstack.errors import Invalid

__all__ = [
    "NUMBER_OPS",
    "STRING_OPS",
    "Clause",
    "Field",
    "OrderKey",
    "like",
    "parse_filter",
    "parse_order_by",
    "split_identifier",
]

STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
NUMBER_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_ORDER_FORM = "<key> [ASC|DESC]"

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
    | (?P<ident>[A-Za-z_]\w*\.(?:`[^`]+`|"[^"]+"|[\w\-./:]+)|[A-Za-z_]\w*)
    | (?P<op>!=|<>|>=|<=|=|>|<)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class Field:
    """What an identifier names: its kind (``metric``, ``tag``, ``attribute``, ...), the key
    or column it stands for, the operators it takes, and how a number is read for it
    (``float``, ``int``; None: it is compared with quoted strings)."""

    kind: str
    key: str
    ops: frozenset[str] = STRING_OPS
    number: Callable[[str], float | int] | None = None


@dataclass(frozen=True)
class Clause:
    """One ``<identifier> <operator> <value>`` of a filter."""

    kind: str
    key: str
    op: str
    value: float | int | str | tuple[str, ...]

    def matches(self, actual: Any) -> bool:
        """Whether ``actual`` (the value the identifier names; None: absent) satisfies it."""
        if actual is None:
            return False
        if self.op == "IN":
            return actual in self.value  # type: ignore[operator]
        if self.op == "NOT IN":
            return actual not in self.value  # type: ignore[operator]
        if self.op in ("LIKE", "ILIKE"):
            return like(str(self.value), str(actual), ignore_case=self.op == "ILIKE")
        return bool(_COMPARE[self.op](actual, self.value))


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item, resolved."""

    kind: str
    key: str
    ascending: bool


def like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """SQL LIKE as MLflow means it: ``%`` any run of characters, ``_`` exactly one."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def split_identifier(ident: str) -> tuple[str | None, str]:
    """``metrics.`my loss``` -> ``("metrics", "my loss")``; ``name`` -> ``(None, "name")``."""
    prefix, dot, key = ident.partition(".")
    if not dot:
        return None, ident
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        key = key[1:-1]
    return prefix, key


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


def _tokens(text: str, what: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Invalid(
                f"could not parse the {what} at position {pos}: {text[pos : pos + 30]!r}",
                field="filter" if what.endswith("filter") else "order_by",
            )
        kind = m.lastgroup or ""
        toks.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return toks


def parse_filter(text: str | None, resolve: Callable[[str], Field], what: str) -> list[Clause]:
    """Parse ``<identifier> <operator> <value> [AND ...]``; raise Invalid naming what was
    expected and what came. ``what`` names the filter in messages (``"run filter"``)."""
    if not text or not text.strip():
        return []
    toks = _tokens(text, what)
    out: list[Clause] = []
    i = 0

    def expect(cond: bool, expected: str) -> None:
        if not cond:
            got = toks[i][1] if i < len(toks) else f"the end of the {what}"
            raise Invalid(f"expected {expected} in the {what}; got {got!r} instead", field="filter")

    while True:
        expect(i < len(toks) and toks[i][0] == "ident", "an identifier like metrics.auc or name")
        ident = toks[i][1]
        field = resolve(ident)
        i += 1
        expect(i < len(toks), "a comparison operator")
        tk, tv = toks[i]
        if tk == "op":
            op, i = {"<>": "!="}.get(tv, tv), i + 1
        elif tk == "ident" and tv.upper() in ("LIKE", "ILIKE", "IN"):
            op, i = tv.upper(), i + 1
        elif tk == "ident" and tv.upper() == "NOT" and toks[i + 1 : i + 2] == [("ident", "IN")]:
            op, i = "NOT IN", i + 2
        elif tk == "ident" and tv.upper() == "NOT" and i + 1 < len(toks):
            op, i = f"NOT {toks[i + 1][1].upper()}", i + 2
        else:
            expect(False, "an operator (=, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN)")
        if op not in field.ops:
            raise Invalid(
                f"{ident} takes one of {', '.join(sorted(field.ops))}; got {op} in the {what}",
                field="filter",
            )
        value: float | int | str | tuple[str, ...]
        if op in ("IN", "NOT IN"):
            expect(i < len(toks) and toks[i] == ("punct", "("), f"'(' after {op}")
            i += 1
            items = []
            while True:
                expect(
                    i < len(toks) and toks[i][0] == "string", f"a quoted string in the {op} list"
                )
                items.append(_unquote(toks[i][1]))
                i += 1
                expect(i < len(toks) and toks[i] in (("punct", ","), ("punct", ")")), "',' or ')'")
                i += 1
                if toks[i - 1] == ("punct", ")"):
                    break
            value = tuple(items)
        else:
            expect(i < len(toks) and toks[i][0] in ("string", "number"), "a value")
            vk, vv = toks[i]
            i += 1
            value = _value(ident, field, vk, vv, what)
        out.append(Clause(field.kind, field.key, op, value))
        if i == len(toks):
            return out
        expect(
            toks[i][0] == "ident" and toks[i][1].upper() == "AND",
            "AND between clauses (OR is not supported)",
        )
        i += 1


def _value(ident: str, field: Field, kind: str, text: str, what: str) -> float | int | str:
    if field.number is None:
        if kind != "string":
            raise Invalid(
                f"{ident} is a string: compare it with a quoted value; got {text} in the {what}",
                field="filter",
            )
        return _unquote(text)
    if kind != "number":
        raise Invalid(
            f"{ident} is numeric: compare it with a number; got {text} in the {what}",
            field="filter",
        )
    number = float(text)
    if field.number is int:
        if not number.is_integer():
            raise Invalid(
                f"{ident} is compared with a whole number; got {text} in the {what}",
                field="filter",
            )
        return int(number)
    return field.number(text)


def parse_order_by(
    items: Sequence[str] | None, resolve: Callable[[str], Field], what: str
) -> list[OrderKey]:
    """Parse each ``<identifier> [ASC|DESC]``; anything else (an unknown direction, extra
    words, nothing at all) is refused, naming the clause and the expected form."""
    out = []
    for item in items or []:
        bad = f"expected {_ORDER_FORM} in the {what} order_by; got {item!r} instead"
        try:
            toks = _tokens(item, f"{what} order_by") if isinstance(item, str) else []
        except Invalid:
            raise Invalid(bad, field="order_by") from None
        directions = ("ASC", "DESC")
        if not (
            1 <= len(toks) <= 2
            and toks[0][0] == "ident"
            and (len(toks) == 1 or (toks[1][0] == "ident" and toks[1][1].upper() in directions))
        ):
            raise Invalid(bad, field="order_by")
        try:
            field = resolve(toks[0][1])
        except Invalid as exc:
            raise Invalid(f"{exc.message} ({bad})", field="order_by") from None
        ascending = len(toks) == 1 or toks[1][1].upper() == "ASC"
        out.append(OrderKey(field.kind, field.key, ascending))
    return out
