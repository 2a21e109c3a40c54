"""MLflow's experiment search: ``name LIKE 'fraud-%' AND tags.team = 'risk'``, ordering, pages.

Experiments are few, so the filter is applied in Python over the store's list;
the grammar is MLflow's: ``name``, ``creation_time``, ``last_update_time`` (with an
optional ``attributes.`` prefix) and ``tags.<key>``, joined by ``AND``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from loopstack.errors import Invalid
from loopstack.tracking._entities import Experiment
from loopstack.tracking._page_token import decode_token, encode_token

__all__ = [
    "COMPARE",
    "decode_token",
    "encode_token",
    "like",
    "parse_filter",
    "search",
    "sort_experiments",
]

_STRING_ATTRS = {"name"}
_NUMBER_ATTRS = {"creation_time", "last_update_time"}
_ORDER_ATTRS = {"name", "experiment_id", "creation_time", "last_update_time"}
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>[-+]?\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_]\w*(?:\.(?:`[^`]+`|"[^"]+"|[\w\-./:]+))?)
    | (?P<op>!=|>=|<=|=|>|<)
    )""",
    re.VERBOSE,
)
COMPARE: dict[str, Callable[[object, object], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
}


@dataclass(frozen=True)
class Clause:
    kind: str  # attribute | tag
    key: str
    op: str
    value: str | int

    def matches(self, exp: Experiment) -> bool:
        if self.kind == "tag":
            actual: object = exp.tags.get(self.key)
            if actual is None:
                return False
        else:
            actual = getattr(exp, self.key)
        if self.op in ("LIKE", "ILIKE"):
            return like(str(self.value), str(actual), ignore_case=self.op == "ILIKE")
        return COMPARE[self.op](actual, self.value)


def like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """SQL LIKE as MLflow means it: ``%`` any run, ``_`` one character."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _identifier(ident: str) -> tuple[str, str]:
    prefix, dot, key = ident.partition(".")
    if not dot:
        prefix, key = "attributes", ident
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        key = key[1:-1]
    if prefix.lower() in ("tag", "tags"):
        return "tag", key
    if (
        prefix.lower() in ("attribute", "attributes", "attr")
        and key in _STRING_ATTRS | _NUMBER_ATTRS
    ):
        return "attribute", key
    raise Invalid(
        f"expected name, creation_time, last_update_time or tags.<key> in the "
        f"experiment filter; got {ident!r} instead",
        field="filter",
    )


def parse_filter(text: str | None) -> list[Clause]:
    if not text or not text.strip():
        return []
    toks: list[tuple[str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Invalid(
                f"could not parse the experiment filter at position {pos}: "
                f"{text[pos : pos + 30]!r}",
                field="filter",
            )
        toks.append((m.lastgroup or "", m.group(m.lastgroup or 0)))
        pos = m.end()
    clauses, i = [], 0
    while True:
        if i + 3 > len(toks):
            raise Invalid(
                f"expected '<field> <operator> <value>' in the experiment filter; got "
                f"{' '.join(t for _, t in toks[i:])!r}",
                field="filter",
            )
        (ik, iv), (ok, ov), (vk, vv) = toks[i : i + 3]
        if ik != "ident":
            raise Invalid(
                f"expected a field name in the experiment filter; got {iv!r}", field="filter"
            )
        kind, key = _identifier(iv)
        op = ov if ok == "op" else ov.upper() if ok == "ident" else ""
        numeric = kind == "attribute" and key in _NUMBER_ATTRS
        if numeric and not (op in COMPARE and vk == "number"):
            raise Invalid(
                f"{key} is numeric: expected =, !=, >, >=, <, <= and a number; got {ov} {vv}",
                field="filter",
            )
        if not numeric and not (op in ("=", "!=", "LIKE", "ILIKE") and vk == "string"):
            raise Invalid(
                f"{iv} is a string: expected =, !=, LIKE or ILIKE and a quoted value; "
                f"got {ov} {vv}",
                field="filter",
            )
        clauses.append(Clause(kind, key, op, int(float(vv)) if numeric else _unquote(vv)))
        i += 3
        if i == len(toks):
            return clauses
        if toks[i][0] != "ident" or toks[i][1].upper() != "AND":
            raise Invalid(
                f"expected AND between experiment filter clauses (OR is not "
                f"supported); got {toks[i][1]!r}",
                field="filter",
            )
        i += 1


def sort_experiments(exps: list[Experiment], order_by: list[str]) -> list[Experiment]:
    """MLflow's default order is newest first; ties break on the id, ascending."""
    keys: list[tuple[str, bool]] = []
    for item in order_by:
        text, ascending = item.strip(), True
        if text.upper().endswith(" DESC"):
            text, ascending = text[:-5].strip(), False
        elif text.upper().endswith(" ASC"):
            text = text[:-4].strip()
        attr = text.split(".", 1)[1] if text.lower().startswith(("attributes.", "attr.")) else text
        if attr not in _ORDER_ATTRS:
            raise Invalid(
                f"expected one of {sorted(_ORDER_ATTRS)} (with ASC or DESC) in "
                f"order_by; got {item!r} instead",
                field="order_by",
            )
        keys.append((attr, ascending))
    if not keys:
        keys = [("creation_time", False)]
    out = sorted(exps, key=lambda e: int(e.experiment_id))
    for attr, ascending in reversed(keys):

        def value(e: Experiment, attr: str = attr) -> object:
            return int(e.experiment_id) if attr == "experiment_id" else getattr(e, attr)

        out.sort(key=value, reverse=not ascending)  # type: ignore[arg-type]
    return out


def search(
    exps: list[Experiment],
    *,
    filter_string: str | None,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
) -> tuple[list[Experiment], str | None]:
    clauses = parse_filter(filter_string)
    found = [e for e in exps if all(c.matches(e) for c in clauses)]
    found = sort_experiments(found, order_by)
    offset = decode_token(page_token)
    page = found[offset : offset + max_results]
    more = offset + max_results < len(found)
    return page, encode_token(offset + max_results) if more else None
