"""Run a list of checks over an Arrow table: one shared DuckDB aggregate pass, then extras.

The table is registered with DuckDB without copying. Every check's aggregates go into a
single ``SELECT ... FROM t``; only uniqueness checks group by on their own, and only
failing row-level checks run a second query (``LIMIT`` a few rows) for examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopstack.data._checks import Check, Context
from loopstack.data._result import CheckResult
from loopstack.data._sql import connect, jsonable, kind_of

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SAMPLE_ROWS", "run_checks"]

#: at most this many offending rows are kept per failing check
SAMPLE_ROWS = 5


def _unusable(check: Check, ctx: Context) -> CheckResult | None:
    """A failed result when the check's columns are missing or of a kind it cannot judge."""
    missing = [c for c in check.used_columns() if c not in ctx.kinds]
    column = getattr(check, "column", None)
    if missing:
        return CheckResult(
            check.type,
            check.name,
            column,
            False,
            {"missing": missing},
            check.to_dict(),
            message=f"column(s) {', '.join(missing)} not in the data",
        )
    if check.kinds is not None:
        wrong = {c: ctx.dtypes[c] for c in check.used_columns() if ctx.kinds[c] not in check.kinds}
        if wrong:
            return CheckResult(
                check.type,
                check.name,
                column,
                False,
                {"dtype": wrong},
                check.to_dict(),
                message=f"{check.type} applies to "
                f"{'/'.join(check.kinds)} columns; got "
                f"{', '.join(f'{c}: {t}' for c, t in wrong.items())}",
            )
    return None


def _sample(ctx: Context, predicate: str) -> list[dict[str, Any]]:
    # through Arrow: DuckDB's own Python conversion needs pytz for zone-aware timestamps
    rows = (
        ctx.con.sql(f"SELECT * FROM t WHERE {predicate} LIMIT {SAMPLE_ROWS}")
        .to_arrow_table()
        .to_pylist()
    )
    return [{k: jsonable(v) for k, v in row.items()} for row in rows]


def _one_by_one(
    checks: list[Check],
    results: list[CheckResult | None],
    spans: list[tuple[int, int]],
    exprs: list[str],
    ctx: Context,
) -> tuple[list[Any], list[CheckResult | None]]:
    import duckdb

    row: list[Any] = [None] * len(exprs)
    out = list(results)
    for i, (check, (start, n)) in enumerate(zip(checks, spans, strict=True)):
        if out[i] is not None or n == 0:
            continue
        try:
            got = ctx.con.execute(
                f"SELECT {', '.join(exprs[start : start + n])} FROM t"
            ).fetchall()[0]
        except duckdb.Error as exc:
            column = check.used_columns()[0] if len(check.used_columns()) == 1 else None
            reason = str(exc).splitlines()[0]
            out[i] = CheckResult(
                check.type,
                check.name,
                column,
                False,
                {"error": reason},
                check.to_dict(),
                message=f"cannot evaluate: {reason}",
            )
            continue
        row[start : start + n] = got
    return row, out


def run_checks(checks: list[Check], table: pa.Table) -> tuple[list[CheckResult], int]:
    """Every check's result, in order, and the table's row count."""
    import duckdb

    con = connect(table)
    try:
        schema = table.schema
        ctx = Context(
            con,
            {str(f.name): kind_of(f.type) for f in schema},
            {str(f.name): str(f.type) for f in schema},
            table.num_rows,
            table,
        )
        results: list[CheckResult | None] = []
        exprs: list[str] = []
        spans: list[tuple[int, int]] = []
        for check in checks:
            early = _unusable(check, ctx)
            results.append(early)
            aggs = [] if early else check.aggregates(ctx)
            spans.append((len(exprs), len(aggs)))
            exprs.extend(aggs)
        row: list[Any] = []
        if exprs:
            try:
                row = list(con.execute(f"SELECT {', '.join(exprs)} FROM t").fetchall()[0])
            except duckdb.Error:  # one check does not fit its column: find it, keep the rest
                row, results = _one_by_one(checks, results, spans, exprs, ctx)
        out: list[CheckResult] = []
        for check, early, (start, n) in zip(checks, results, spans, strict=True):
            if early is not None:
                out.append(early)
                continue
            result = check.evaluate(row[start : start + n], ctx)
            if not result.passed and result.failing_count:
                predicate = check.violation(ctx)
                if predicate:
                    result.failing_rows = _sample(ctx, predicate)
            out.append(result)
        return out, table.num_rows
    finally:
        con.close()
