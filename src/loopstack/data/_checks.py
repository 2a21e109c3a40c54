"""The checks a suite is made of. Each contributes SQL aggregates to one shared query.

A check is a small dataclass: its fields are its parameters (what ``to_dict`` writes and
``check_from_dict`` reads back). ``aggregates`` returns SQL expressions evaluated with
every other check's in a single DuckDB pass over the table; ``evaluate`` turns their
values into a ``CheckResult``; row-level checks also give a ``violation`` predicate, used
only when they fail, to fetch a few offending rows.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from loopstack.data._result import CheckResult
from loopstack.data._sql import ident, jsonable, literal, not_nan
from loopstack.errors import Invalid

__all__ = ["CHECKS", "Check", "Context", "check_from_dict", "register_check"]

_NUMERIC = ("integer", "float")
_ORDERED = ("integer", "float", "timestamp", "date", "string")


@dataclass
class Context:
    """What checks see: the DuckDB connection (table ``t``), column kinds and types, row count."""

    con: Any
    kinds: dict[str, str]
    dtypes: dict[str, str]
    num_rows: int = 0
    table: Any = None  #: the Arrow table itself, for checks faster in pyarrow.compute


class Check(abc.ABC):
    """One rule about a table. Subclasses are dataclasses; ``type`` names them in suite files."""

    type: ClassVar[str]
    #: column kinds the check applies to (None: any)
    kinds: ClassVar[tuple[str, ...] | None] = None

    @property
    def name(self) -> str:
        cols = self.used_columns()
        return f"{self.type}({', '.join(cols)})" if cols else self.type

    def used_columns(self) -> list[str]:
        """The columns the check reads (a missing one fails the check without running it)."""
        column = getattr(self, "column", None)
        return [column] if column is not None else []

    def aggregates(self, ctx: Context) -> list[str]:
        return []

    def violation(self, ctx: Context) -> str | None:
        """A SQL predicate true for each offending row, for row-level checks."""
        return None

    @abc.abstractmethod
    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult: ...

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = jsonable(getattr(self, f.name))
        return out

    def result(
        self,
        passed: bool,
        observed: Any,
        expected: Any,
        *,
        failing_count: int | None = None,
        message: str = "",
    ) -> CheckResult:
        cols = self.used_columns()
        column = cols[0] if len(cols) == 1 else None
        return CheckResult(
            self.type,
            self.name,
            column,
            bool(passed),
            jsonable(observed),
            jsonable(expected),
            failing_count,
            [],
            message,
        )


CHECKS: dict[str, type[Check]] = {}


def register_check(cls: type[Check]) -> type[Check]:
    CHECKS[cls.type] = cls
    return cls


def check_from_dict(data: Any) -> Check:
    """A check from its dict form; an unknown type or parameter is ``Invalid``, naming the valid."""
    if not isinstance(data, dict) or "type" not in data:
        raise Invalid(
            f"a check must be a mapping with a 'type'; got {data!r} instead", field="checks"
        )
    params = dict(data)
    kind = params.pop("type")
    cls = CHECKS.get(kind)
    if cls is None:
        raise Invalid(
            f"unknown check type {kind!r}; the valid types are {', '.join(sorted(CHECKS))}",
            field="checks",
        )
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise Invalid(
            f"check {kind!r} has no parameter {', '.join(map(repr, unknown))}; its "
            f"parameters are {', '.join(names)}",
            field="checks",
        )
    try:
        check = cls(**params)
    except TypeError as exc:
        raise Invalid(
            f"check {kind!r}: {exc}; its parameters are {', '.join(names)}", field="checks"
        ) from exc
    validate = getattr(check, "validate_params", None)
    if validate is not None:
        validate()
    return check


def _fraction(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise Invalid(
            f"{what} must be a fraction between 0 and 1; got {value!r} instead", field="checks"
        )
    return float(value)


# -- table and schema ---------------------------------------------------------------------
def _normal_dtype(text: str) -> str:
    return {
        "large_string": "string",
        "large_utf8": "string",
        "utf8": "string",
        "string_view": "string",
        "large_binary": "binary",
        "binary_view": "binary",
    }.get(text, text)


@register_check
@dataclass
class SchemaCheck(Check):
    """Columns and their types: ``dtype`` is an Arrow type (``int64``) or a kind (``integer``)."""

    type = "schema"
    columns: dict[str, str] = field(default_factory=dict)
    required: list[str] | None = None  #: default: every column named
    allow_extra: bool = True

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        from loopstack.data._sql import KINDS

        required = self.required if self.required is not None else list(self.columns)
        missing = [c for c in required if c not in ctx.kinds]
        mismatched = {}
        for col, want in self.columns.items():
            if col not in ctx.kinds or want in (None, "", "any"):
                continue
            ok = (
                ctx.kinds[col] == want
                if want in KINDS
                else _normal_dtype(ctx.dtypes[col]) == _normal_dtype(want)
            )
            if want == "float" and ctx.kinds[col] == "integer":
                ok = True  # integers are acceptable where floats are expected
            if not ok:
                mismatched[col] = ctx.dtypes[col]
        extra = [] if self.allow_extra else [c for c in ctx.kinds if c not in self.columns]
        observed = {"missing": missing, "wrong_type": mismatched, "unexpected": extra}
        problems = [f"missing column(s) {', '.join(missing)}"] if missing else []
        problems += [f"{c} is {t}, expected {self.columns[c]}" for c, t in mismatched.items()]
        if extra:
            problems.append(f"unexpected column(s) {', '.join(extra)}")
        expected = {"columns": self.columns, "required": required}
        return self.result(not problems, observed, expected, message="; ".join(problems))

    @property
    def name(self) -> str:
        return "schema"

    def used_columns(self) -> list[str]:
        return []


@register_check
@dataclass
class RowCountCheck(Check):
    type = "row_count"
    min: int | None = None
    max: int | None = None

    def aggregates(self, ctx: Context) -> list[str]:
        return ["count(*)"]

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        n = int(values[0])
        ok = (self.min is None or n >= self.min) and (self.max is None or n <= self.max)
        return self.result(
            ok,
            n,
            {"min": self.min, "max": self.max},
            message="" if ok else f"{n} rows, expected {_bounds_in_words(self.min, self.max)}",
        )


def _bounds_in_words(low: int | None, high: int | None) -> str:
    """``between 5 and 9``, ``at least 5`` or ``at most 9``."""
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


# -- column checks ----------------------------------------------------------------------------
def _missing_count(column: str, ctx: Context) -> int:
    """Nulls (and NaNs): Arrow keeps the null count, so only float columns need a pass."""
    import pyarrow.compute as pc

    col = ctx.table.column(column)
    nans = 0
    if ctx.kinds[column] == "float" and not str(col.type).startswith("decimal"):
        nans = int(pc.sum(pc.is_nan(col)).as_py() or 0)
    return int(col.null_count) + nans


@register_check
@dataclass
class NullRateCheck(Check):
    """At most ``max`` (a fraction) of the column is null (NaN counts as null)."""

    type = "null_rate"
    column: str
    max: float = 0.0

    def validate_params(self) -> None:
        _fraction(self.max, "null_rate's 'max'")

    def violation(self, ctx: Context) -> str:
        col = ident(self.column)
        return f"NOT {not_nan(col, ctx.kinds[self.column])}"

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        nulls = _missing_count(self.column, ctx)
        rate = nulls / ctx.num_rows if ctx.num_rows else 0.0
        ok = rate <= self.max
        return self.result(
            ok,
            rate,
            {"max": self.max},
            failing_count=nulls,
            message="" if ok else f"{rate:.4g} of rows are null, expected at most {self.max:.4g}",
        )


@register_check
@dataclass
class LabelAvailabilityCheck(Check):
    """At least ``min`` (a fraction) of the rows have a label (a non-null value in ``column``)."""

    type = "label_availability"
    column: str
    min: float = 1.0

    def validate_params(self) -> None:
        _fraction(self.min, "label_availability's 'min'")

    def violation(self, ctx: Context) -> str:
        return f"NOT {not_nan(ident(self.column), ctx.kinds[self.column])}"

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        missing = _missing_count(self.column, ctx)
        share = 1 - missing / ctx.num_rows if ctx.num_rows else 0.0
        ok = share >= self.min
        return self.result(
            ok,
            share,
            {"min": self.min},
            failing_count=missing,
            message=""
            if ok
            else f"{share:.4g} of rows have a label, expected at least {self.min:.4g}",
        )


@register_check
@dataclass
class RangeCheck(Check):
    """Every non-null value lies in [min, max] (each bound optional, inclusive unless told)."""

    type = "range"
    kinds = _ORDERED
    column: str
    min: Any = None
    max: Any = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    def validate_params(self) -> None:
        if self.min is None and self.max is None:
            raise Invalid(
                f"range check on {self.column!r} needs 'min', 'max' or both", field="checks"
            )

    def violation(self, ctx: Context) -> str:
        col, parts = ident(self.column), []
        if self.min is not None:
            parts.append(f"{col} {'<' if self.min_inclusive else '<='} {literal(self.min)}")
        if self.max is not None:
            parts.append(f"{col} {'>' if self.max_inclusive else '>='} {literal(self.max)}")
        return "(" + " OR ".join(parts) + ")"

    def aggregates(self, ctx: Context) -> list[str]:
        return [f"count_if({self.violation(ctx)})"]

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        bad = int(values[0])
        lo = "[" if self.min_inclusive else "("
        hi = "]" if self.max_inclusive else ")"
        bounds = f"{lo}{_show(self.min, '-inf')}, {_show(self.max, 'inf')}{hi}"
        observed: dict[str, Any] = {"out_of_range": bad}
        if bad:  # only a failing check pays for its observed extremes
            col = ident(self.column)
            ok = not_nan(col, ctx.kinds[self.column])
            observed["min"], observed["max"] = ctx.con.execute(
                f"SELECT min({col}), max({col}) FROM t WHERE {ok}"
            ).fetchall()[0]
        return self.result(
            bad == 0,
            observed,
            {
                "min": self.min,
                "max": self.max,
                "min_inclusive": self.min_inclusive,
                "max_inclusive": self.max_inclusive,
            },
            failing_count=bad,
            message="" if bad == 0 else f"{bad} value(s) outside {bounds}",
        )


def _show(value: Any, default: str) -> str:
    return default if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


@register_check
@dataclass
class AllowedValuesCheck(Check):
    """Every non-null value is one of ``values``."""

    type = "allowed_values"
    column: str
    values: list[Any] = field(default_factory=list)

    def validate_params(self) -> None:
        if not isinstance(self.values, list | tuple | set):
            raise Invalid(
                f"allowed_values on {self.column!r}: 'values' must be a list; got "
                f"{self.values!r} instead",
                field="checks",
            )
        self.values = list(self.values)

    def violation(self, ctx: Context) -> str:
        col = ident(self.column)
        if not self.values:
            return f"({col} IS NOT NULL)"
        allowed = ", ".join(literal(v) for v in self.values)
        return f"({col} IS NOT NULL AND {col} NOT IN ({allowed}))"

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = ctx.table.column(self.column)
        try:  # pyarrow's hash-based is_in beats a SQL IN list over Arrow strings
            allowed = pa.array(self.values, type=column.type) if self.values else None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            allowed = None
        if allowed is not None or not self.values:
            hits = (
                int(pc.sum(pc.is_in(column, value_set=allowed)).as_py() or 0)
                if allowed is not None
                else 0
            )  # a null is never "in" a set without nulls
            bad = len(column) - column.null_count - hits
        else:
            bad = int(
                ctx.con.execute(f"SELECT count_if({self.violation(ctx)}) FROM t").fetchall()[0][0]
            )
        observed: dict[str, Any] = {"unexpected": bad}
        if bad:
            col = ident(self.column)
            rows = ctx.con.execute(
                f"SELECT DISTINCT {col} FROM t WHERE {self.violation(ctx)} ORDER BY 1 LIMIT 10"
            ).fetchall()
            observed["unexpected_values"] = [jsonable(r[0]) for r in rows]
        return self.result(
            bad == 0,
            observed,
            {"values": self.values},
            failing_count=bad,
            message=""
            if bad == 0
            else f"{bad} value(s) not allowed, e.g. {observed['unexpected_values'][:3]}",
        )


@register_check
@dataclass
class PatternCheck(Check):
    """Every non-null value (as text) matches the regular expression ``regex`` in full."""

    type = "pattern"
    column: str
    regex: str = ""

    def validate_params(self) -> None:
        try:
            re.compile(self.regex)
        except (re.error, TypeError) as exc:
            raise Invalid(
                f"pattern on {self.column!r}: {self.regex!r} is not a valid regular "
                f"expression ({exc})",
                field="checks",
            ) from exc

    def violation(self, ctx: Context) -> str:
        col = ident(self.column)
        return (
            f"({col} IS NOT NULL AND NOT regexp_full_match({col}::VARCHAR, {literal(self.regex)}))"
        )

    def aggregates(self, ctx: Context) -> list[str]:
        return [] if ctx.kinds[self.column] == "string" else [f"count_if({self.violation(ctx)})"]

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        if values:
            bad = int(values[0])
        else:  # Arrow's RE2 straight on the Arrow strings: no conversion into DuckDB
            import pyarrow.compute as pc

            column = ctx.table.column(self.column)
            hit = pc.match_substring_regex(column, f"^(?:{self.regex})$")
            bad = int(pc.sum(pc.invert(hit)).as_py() or 0)  # nulls stay null: not counted
        return self.result(
            bad == 0,
            {"not_matching": bad},
            {"regex": self.regex},
            failing_count=bad,
            message="" if bad == 0 else f"{bad} value(s) do not match {self.regex!r}",
        )


@register_check
@dataclass
class FreshnessCheck(Check):
    """The newest ``column`` timestamp is at most ``max_age`` old (seconds, or '36h', '2d')."""

    type = "freshness"
    kinds = ("timestamp", "date")
    column: str
    max_age: Any = "1d"
    #: the instant to measure age from (ISO text); default: now
    now: str | None = None

    def validate_params(self) -> None:
        self.max_age_seconds()

    def max_age_seconds(self) -> float:
        return parse_duration(self.max_age)

    def aggregates(self, ctx: Context) -> list[str]:
        # epoch microseconds: DuckDB would need pytz to hand back a zone-aware datetime
        cast = "::TIMESTAMP" if ctx.kinds[self.column] == "date" else ""
        return [f"epoch_us(max({ident(self.column)}){cast})"]

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        newest = None if values[0] is None else dt.datetime.fromtimestamp(values[0] / 1e6, dt.UTC)
        now = _as_utc(dt.datetime.fromisoformat(self.now)) if self.now else dt.datetime.now(dt.UTC)
        limit = self.max_age_seconds()
        expected = {"max_age_seconds": limit}
        if newest is None:
            return self.result(False, {"newest": None}, expected, message="no timestamps at all")
        age = (now - newest).total_seconds()
        ok = age <= limit
        return self.result(
            ok,
            {"newest": newest, "age_seconds": age},
            expected,
            message="" if ok else f"newest row is {age:.0f}s old, expected at most {limit:.0f}s",
        )


def _as_utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """Seconds from a number or text like ``'90s'``, ``'30m'``, ``'36h'``, ``'2d'``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    raise Invalid(
        f"a duration must be seconds or text like '30m', '36h', '2d'; got {value!r} instead",
        field="max_age",
    )
