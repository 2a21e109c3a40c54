"""Per-column profiles computed in a few DuckDB aggregate queries over an Arrow table.

A profile is plain JSON::

    {"num_rows": 3, "num_columns": 1, "columns": {"age": {
        "dtype": "int64", "kind": "integer", "count": 2, "nulls": 1, "distinct": 2,
        "min": 1, "max": 3, "mean": 2.0, "std": 1.414, "quantiles": {"p01": ..., "p99": ...},
        "histogram": {"edges": [1.0, ..., 3.0], "counts": [1, ..., 1]}}}}

Strings and booleans carry ``top`` (the most frequent values with their counts) instead
of quantiles and a histogram; timestamps and dates carry ``min`` and ``max`` as ISO text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopstack.data._sql import bin_count_exprs, connect, ident, jsonable, kind_of, not_nan

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["HISTOGRAM_BINS", "QUANTILES", "TOP_K", "profile_table"]

QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
HISTOGRAM_BINS = 10
TOP_K = 20
_NUMERIC = ("integer", "float")
_CATEGORICAL = ("string", "bool")


def profile_table(
    table: pa.Table, *, bins: int = HISTOGRAM_BINS, top_k: int = TOP_K
) -> dict[str, Any]:
    """The profile of every column of ``table`` (see the module docstring for its shape)."""
    con = connect(table)
    try:
        return _profile(con, table, bins, top_k)
    finally:
        con.close()


def _profile(con: Any, table: pa.Table, bins: int, top_k: int) -> dict[str, Any]:
    names = [str(n) for n in table.column_names]
    kinds = {n: kind_of(table.schema.field(i).type) for i, n in enumerate(names)}
    exprs: list[str] = ["count(*)"]
    slots: dict[str, dict[str, int]] = {}

    def add(name: str, key: str, expr: str) -> None:
        slots.setdefault(name, {})[key] = len(exprs)
        exprs.append(expr)

    qs = "[" + ", ".join(str(q) for q in QUANTILES.values()) + "]"
    for name in names:
        col, kind = ident(name), kinds[name]
        add(name, "count", f"count({col})")
        if kind == "other":
            continue
        add(name, "distinct", f"count(DISTINCT {col})")
        if kind in _NUMERIC:
            ok = not_nan(col, kind)
            v = f"{col}::DOUBLE"
            add(name, "min", f"min({v}) FILTER (WHERE {ok})")
            add(name, "max", f"max({v}) FILTER (WHERE {ok})")
            add(name, "mean", f"avg({v}) FILTER (WHERE {ok})")
            add(name, "std", f"stddev_samp({v}) FILTER (WHERE {ok})")
            add(name, "quantiles", f"quantile_cont({v}, {qs}) FILTER (WHERE {ok})")
        elif kind in ("timestamp", "date"):
            add(name, "min", f"min({col})::VARCHAR")
            add(name, "max", f"max({col})::VARCHAR")
        elif kind == "bool":
            add(name, "mean", f"avg({col}::INTEGER)")
    row = con.execute(f"SELECT {', '.join(exprs)} FROM t").fetchall()[0]
    num_rows = int(row[0])
    columns: dict[str, Any] = {}
    for i, name in enumerate(names):
        kind = kinds[name]
        got = {k: jsonable(row[j]) for k, j in slots[name].items()}
        count = int(got["count"])
        entry: dict[str, Any] = {
            "dtype": str(table.schema.field(i).type),
            "kind": kind,
            "count": count,
            "nulls": num_rows - count,
        }
        for key in ("distinct", "min", "max", "mean", "std"):
            if key in got:
                entry[key] = got[key]
        if "quantiles" in got:
            values = got["quantiles"] or [None] * len(QUANTILES)
            entry["quantiles"] = dict(zip(QUANTILES, values, strict=True))
        columns[name] = entry
    _add_histograms(con, columns, kinds, bins)
    for name in names:
        if kinds[name] in _CATEGORICAL:
            columns[name]["top"] = top_values(con, name, top_k)
    return {"num_rows": num_rows, "num_columns": len(names), "columns": columns}


def histogram_edges(lo: float, hi: float, bins: int) -> list[float]:
    if hi <= lo:
        return [lo, hi]
    width = (hi - lo) / bins
    return [lo + width * i for i in range(bins)] + [hi]


def _add_histograms(con: Any, columns: dict[str, Any], kinds: dict[str, str], bins: int) -> None:
    exprs: list[str] = []
    spans: dict[str, tuple[int, list[float]]] = {}
    for name, entry in columns.items():
        if kinds[name] not in _NUMERIC or entry.get("min") is None:
            continue
        edges = histogram_edges(float(entry["min"]), float(entry["max"]), bins)
        spans[name] = (len(exprs), edges)
        exprs.extend(bin_count_exprs(ident(name), kinds[name], edges))
    if not exprs:
        return
    row = con.execute(f"SELECT {', '.join(exprs)} FROM t").fetchall()[0]
    for name, (start, edges) in spans.items():
        n = max(1, len(edges) - 1)
        columns[name]["histogram"] = {
            "edges": edges,
            "counts": [int(c) for c in row[start : start + n]],
        }


def top_values(con: Any, name: str, k: int) -> list[dict[str, Any]]:
    """The ``k`` most frequent non-null values of a column with their counts (ties by value)."""
    col = ident(name)
    rows = con.execute(
        f"SELECT {col} AS v, count(*) AS n FROM t WHERE {col} IS NOT NULL "
        f"GROUP BY {col} ORDER BY n DESC, v LIMIT {int(k)}"
    ).fetchall()
    return [{"value": jsonable(v), "count": int(n)} for v, n in rows]
