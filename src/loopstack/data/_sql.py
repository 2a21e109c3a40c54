"""SQL text for DuckDB over an Arrow table: quoting, literals, column kinds, histogram bins."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["bin_count_exprs", "connect", "ident", "jsonable", "kind_of", "literal", "not_nan"]

#: the kinds a column can be, from its Arrow type
KINDS = ("integer", "float", "bool", "string", "timestamp", "date", "other")


def kind_of(t: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return kind_of(t.value_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "other"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL literal for a JSON-ish Python value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        f = float(value)
        if math.isnan(f):
            return "'NaN'::DOUBLE"
        if math.isinf(f):
            return "'inf'::DOUBLE" if f > 0 else "'-inf'::DOUBLE"
        return repr(f)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def not_nan(col: str, kind: str) -> str:
    """A predicate: ``col`` holds a usable value (not null, and not NaN for floats)."""
    return (
        f"({col} IS NOT NULL AND NOT isnan({col}))" if kind == "float" else f"({col} IS NOT NULL)"
    )


def bin_count_exprs(col: str, kind: str, edges: list[float]) -> list[str]:
    """One ``count_if`` per histogram bin; the first and last bins are open-ended.

    Bins are ``[e_i, e_i+1)``; values below the first edge count in the first bin and
    values at or above the last inner edge in the last, so a current sample is binned
    against a reference's edges without losing anything outside its range.
    """
    ok = not_nan(col, kind)
    inner = edges[1:-1]
    if not inner:
        return [f"count_if({ok})"]
    exprs = [f"count_if({ok} AND {col} < {literal(inner[0])})"]
    for lo, hi in zip(inner, inner[1:], strict=False):
        exprs.append(f"count_if({col} >= {literal(lo)} AND {col} < {literal(hi)})")
    exprs.append(f"count_if({ok} AND {col} >= {literal(inner[-1])})")
    return exprs


def jsonable(value: Any) -> Any:
    """A JSON-able form of a value DuckDB or Arrow returned (dates as ISO text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def connect(table: pa.Table) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with ``table`` registered as ``t`` (no copy)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # zone-less timestamps are read as UTC instants
    con.register("t", table)
    return con
