"""Checks that compare rows with each other or with a reference: uniqueness, cardinality, PSI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopstack.data._checks import Check, Context, register_check
from loopstack.data._result import CheckResult
from loopstack.data._sql import bin_count_exprs, ident, jsonable, literal
from loopstack.errors import Invalid

__all__ = ["CardinalityCheck", "DistributionCheck", "DuplicateRowsCheck", "UniqueCheck", "psi"]

#: a share that is zero on one side is smoothed to this, so PSI stays finite
_EPS = 1e-4


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two count vectors over the same bins.

    >>> round(psi([50, 50], [50, 50]), 6)
    0.0
    """
    e_total, a_total = sum(expected), sum(actual)
    if not e_total or not a_total:
        return 0.0 if e_total == a_total else math.inf
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / e_total, _EPS), max(a / a_total, _EPS)
        total += (pa - pe) * math.log(pa / pe)
    return total


def _strictly_increasing(column: Any) -> bool:
    import pyarrow.compute as pc

    if column.null_count or len(column) < 2:
        return False
    arr = column.combine_chunks() if column.num_chunks > 1 else column.chunk(0)
    return bool(pc.all(pc.greater(arr[1:], arr[:-1])).as_py())


class _KeyCheck(Check):
    """Rows whose key (a column set) occurs more than once; nulls compare equal."""

    def key_columns(self, ctx: Context) -> list[str]:
        raise NotImplementedError

    def _duplicates(self, ctx: Context) -> tuple[int, int]:
        columns = self.key_columns(ctx)
        if (
            len(columns) == 1
            and ctx.kinds[columns[0]] == "integer"
            and _strictly_increasing(ctx.table.column(columns[0]))
        ):
            return 0, 0  # a sorted id column proves itself unique without a hash table
        keys = ", ".join(ident(c) for c in columns)
        dup_rows, dup_keys = ctx.con.execute(
            f"SELECT coalesce(sum(n), 0), count(*) FROM (SELECT count(*) AS n FROM t "
            f"GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchall()[0]
        return int(dup_rows), int(dup_keys)

    def violation(self, ctx: Context) -> str:
        keys = ", ".join(ident(c) for c in self.key_columns(ctx))
        return (
            f"({keys}) IN (SELECT ({keys}) FROM t GROUP BY {keys} HAVING count(*) > 1)"
            if len(self.key_columns(ctx)) > 1
            else f"{keys} IN (SELECT {keys} FROM t GROUP BY {keys} HAVING count(*) > 1)"
        )


@register_check
@dataclass
class UniqueCheck(_KeyCheck):
    """No two rows share a value of ``columns`` (one column or a set taken together)."""

    type = "unique"
    columns: list[str] = field(default_factory=list)

    def validate_params(self) -> None:
        if isinstance(self.columns, str):
            self.columns = [self.columns]
        if not self.columns:
            raise Invalid("a unique check needs 'columns' (one or more)", field="checks")

    def used_columns(self) -> list[str]:
        return list(self.columns)

    def key_columns(self, ctx: Context) -> list[str]:
        return list(self.columns)

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        rows, keys = self._duplicates(ctx)
        return self.result(
            rows == 0,
            {"duplicate_rows": rows, "duplicate_keys": keys},
            {"duplicate_rows": 0},
            failing_count=rows,
            message="" if rows == 0 else f"{keys} value(s) repeat, over {rows} rows",
        )


@register_check
@dataclass
class DuplicateRowsCheck(_KeyCheck):
    """At most ``max`` rows are exact duplicates of another row (every column equal)."""

    type = "duplicate_rows"
    max: int = 0

    def key_columns(self, ctx: Context) -> list[str]:
        return list(ctx.kinds)

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        rows, keys = self._duplicates(ctx)
        extra = rows - keys  # rows beyond the first of each duplicated group
        ok = extra <= self.max
        return self.result(
            ok,
            {"duplicate_rows": extra},
            {"max": self.max},
            failing_count=rows,
            message="" if ok else f"{extra} duplicate row(s), expected at most {self.max}",
        )


@register_check
@dataclass
class CardinalityCheck(Check):
    """The distinct count changed by at most ``max_change`` (relative) from ``reference``."""

    type = "cardinality"
    column: str
    reference: int = 0
    max_change: float = 0.5

    def validate_params(self) -> None:
        if not isinstance(self.reference, int) or self.reference < 0:
            raise Invalid(
                f"cardinality on {self.column!r}: 'reference' must be a distinct "
                f"count; got {self.reference!r} instead",
                field="checks",
            )

    def aggregates(self, ctx: Context) -> list[str]:
        return [f"count(DISTINCT {ident(self.column)})"]

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        distinct = int(values[0])
        change = abs(distinct - self.reference) / max(self.reference, 1)
        ok = change <= self.max_change
        return self.result(
            ok,
            {"distinct": distinct, "relative_change": change},
            {"reference": self.reference, "max_change": self.max_change},
            message=""
            if ok
            else f"{distinct} distinct values vs {self.reference}"
            f" in the reference ({change:.1%} change, at most "
            f"{self.max_change:.1%} allowed)",
        )


@register_check
@dataclass
class DistributionCheck(Check):
    """PSI of the column against a reference stays at most ``max_psi``.

    Numeric: the reference's histogram ``edges`` and ``counts`` (the current data is binned
    on the same edges, with open outer bins). Categorical: the reference's ``categories``
    as ``[[value, count], ...]`` plus ``other``, the count of every other value.
    """

    type = "distribution"
    column: str
    max_psi: float = 0.2
    edges: list[float] | None = None
    counts: list[int] | None = None
    categories: list[list[Any]] | None = None
    other: int = 0

    def validate_params(self) -> None:
        if self.edges is not None:
            if not self.counts or len(self.counts) != max(1, len(self.edges) - 1):
                raise Invalid(
                    f"distribution on {self.column!r}: 'counts' must have one entry "
                    "per bin (len(edges) - 1)",
                    field="checks",
                )
        elif not self.categories:
            raise Invalid(
                f"distribution on {self.column!r} needs 'edges' and 'counts' "
                "(numeric) or 'categories' (categorical)",
                field="checks",
            )
        if not isinstance(self.max_psi, int | float) or self.max_psi < 0:
            raise Invalid(
                f"distribution on {self.column!r}: 'max_psi' must be >= 0; got "
                f"{self.max_psi!r} instead",
                field="checks",
            )

    def aggregates(self, ctx: Context) -> list[str]:
        col, kind = ident(self.column), ctx.kinds[self.column]
        if self.edges is not None:
            if kind not in ("integer", "float"):
                return []
            return bin_count_exprs(col, kind, [float(e) for e in self.edges])
        exprs = [f"count({col})"]
        for value, _ in self.categories or []:
            exprs.append(f"count_if({col} = {literal(value)})")
        return exprs

    def evaluate(self, values: list[Any], ctx: Context) -> CheckResult:
        expected_desc = {"max_psi": self.max_psi}
        if self.edges is not None:
            if ctx.kinds[self.column] not in ("integer", "float"):
                return self.result(
                    False,
                    {"dtype": ctx.dtypes[self.column]},
                    expected_desc,
                    message=f"a numeric reference, but the column is {ctx.dtypes[self.column]}",
                )
            ref, cur = [float(c) for c in self.counts or []], [float(v) for v in values]
        else:
            seen = [int(v) for v in values[1:]]
            ref = [float(c) for _, c in self.categories or []] + [float(self.other)]
            cur = [float(v) for v in seen] + [float(int(values[0]) - sum(seen))]
        score = psi(ref, cur)
        ok = score <= self.max_psi
        return self.result(
            ok,
            {"psi": jsonable(score) if math.isfinite(score) else "inf"},
            expected_desc,
            message="" if ok else f"PSI {score:.3f} above {self.max_psi}",
        )
