"""The prediction log's requests as one row per model row, in DuckDB (vectorized).

A logged request holds JSON text: ``inputs`` (records ``[{col: v}, ...]``, columns
``{col: [v, ...]}``, OIP tensors ``{name: values}`` (1-D a column, 2-D ``[N, C]``
the columns ``name_0..name_{C-1}``, ``[N, 1]`` the column ``name``), or a bare
array (``instances``: ``input`` or ``input_0..``)), ``features`` (what enrichment
read, ``{col: [v, ...]}``) and ``output`` (``{"predict": [...], "predict_proba":
[[...], ...]}``, one entry per model row). The structure (column names and types)
is inferred per call from all the window's rows at once (``json_group_structure``)
and each document is parsed once into typed lists that are unnested in parallel.

A request whose JSON does not parse, or whose parts disagree on the number of rows,
is skipped and counted (``skipped_requests``), never raised.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, excerpt

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["SKIPPED_KEY", "flatten_predictions", "skipped_requests"]

#: schema metadata of a flat table: how many requests were skipped (bad JSON, bad shape)
SKIPPED_KEY = b"loopstack.skipped_requests"
_BASE = ("ts", "request_id", "row", "endpoint", "model_version", "arm", "latency_ms")
_RESERVED = {*_BASE, "shadow", "prediction"}
_INTEGERS = {"UBIGINT", "BIGINT", "UINTEGER", "INTEGER", "USMALLINT", "SMALLINT", "UTINYINT"}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _leaf(t: Any) -> str:
    """A structure leaf as the type ``from_json`` reads (mixed or unknown: text)."""
    if t in _INTEGERS:
        return "BIGINT"
    if t in ("DOUBLE", "BOOLEAN", "VARCHAR"):
        return str(t)
    if t == "NULL":
        return "DOUBLE"
    return "VARCHAR"  # JSON (mixed types), anything else: its text


def _merge(a: Any, b: Any) -> Any:
    """Two structures (``json_structure``'s) as one, as ``json_group_structure`` merges."""
    if a == b:
        return a
    if a == "NULL":
        return b
    if b == "NULL":
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return a or b
        return [_merge(a[0], b[0])]
    if isinstance(a, str) and isinstance(b, str):
        if a in _INTEGERS and b in _INTEGERS:
            return "BIGINT"
        if {a, b} <= {*_INTEGERS, "DOUBLE"}:
            return "DOUBLE"
    return "JSON"


def _depth(s: Any) -> int:
    """0 for a scalar leaf, 1 for a list of scalars, 2 for a list of lists (deeper: text)."""
    if isinstance(s, list) and s:
        inner = s[0]
        if isinstance(inner, list) and inner and not isinstance(inner[0], list | dict):
            return 2
        return 1 if not isinstance(inner, list | dict) else 3
    return 0 if not isinstance(s, dict) else 3


def _spec(s: Any) -> Any:
    """The structure as ``from_json`` reads it: leaves typed, deep or mixed parts as text."""
    d = _depth(s)
    if d == 0:
        return _leaf(s)
    if d == 1:
        return [_leaf(s[0])]
    if d == 2:
        return [[_leaf(s[0][0])]]
    if isinstance(s, list):
        return ["VARCHAR"]
    return "VARCHAR"


class _Part:
    """One source (inputs or features) of one kind: a relation (_req, row, columns)."""

    def __init__(self, sql: str, columns: list[tuple[str, bool]]) -> None:
        self.sql = sql
        self.columns = columns  # (name, is a 2-D tensor: a list per row)


def _relation(source: str, kind: str, structure: Any, default: str) -> _Part | None:
    """SQL flattening ``source`` for the rows of ``kind`` (records, array, object, record)."""
    where = f"FROM good WHERE {source}_kind = '{kind}'"
    rows = "unnest(range(n)) AS row"
    if kind == "records":
        if not (isinstance(structure, list) and structure and isinstance(structure[0], dict)):
            return None
        fields = structure[0]
        spec = [{k: _spec(v) for k, v in fields.items()}]
        cols = [(k, _depth(v) == 2) for k, v in fields.items()]
        parse = f"from_json({source}, {_lit(json.dumps(spec))})"
        inner = f"SELECT _req, {rows}, unnest({parse}) AS r {where}"
        picks = "".join(f", r.{_q(k)} AS {_q(k)}" for k, _ in cols)
        return _Part(f"SELECT _req, row{picks} FROM ({inner})", cols)
    if kind == "array":
        spec = _spec(structure)
        if not isinstance(spec, list):
            return None
        two_d = isinstance(spec[0], list)
        sql = (
            f"SELECT _req, {rows}, unnest(from_json({source}, {_lit(json.dumps(spec))}))"
            f" AS {_q(default)} {where}"
        )
        return _Part(sql, [(default, two_d)])
    if not isinstance(structure, dict):
        return None
    if kind == "record":  # one model row: {col: value}
        spec_r = {k: _spec(v) for k, v in structure.items()}
        picks = "".join(f", s.{_q(k)} AS {_q(k)}" for k in spec_r)
        sql = (
            f"SELECT _req, 0::BIGINT AS row{picks} FROM (SELECT _req, "
            f"from_json({source}, {_lit(json.dumps(spec_r))}) AS s {where})"
        )
        return _Part(sql, [(k, False) for k in spec_r])
    spec_o = {k: _spec(v) for k, v in structure.items()}
    unnested: list[str] = []
    columns: list[tuple[str, bool]] = []
    for k, v in spec_o.items():
        if isinstance(v, list):
            unnested.append(f"unnest(s.{_q(k)}) AS {_q(k)}")
            columns.append((k, isinstance(v[0], list)))
        else:  # a scalar: the same value for every row (a single record)
            unnested.append(f"s.{_q(k)} AS {_q(k)}")
            columns.append((k, False))
    inner = f"SELECT _req, n, from_json({source}, {_lit(json.dumps(spec_o))}) AS s {where}"
    return _Part(f"SELECT _req, {rows}, {', '.join(unnested)} FROM ({inner})", columns)


_KIND = """CASE WHEN {c} IS NULL THEN 'none'
     WHEN json_type({c}) = 'ARRAY' AND json_type({c}, '$[0]') = 'OBJECT' THEN 'records'
     WHEN json_type({c}) = 'ARRAY' THEN 'array'
     WHEN json_type({c}) = 'OBJECT' AND coalesce(list_bool_and(list_transform(
         json_extract({c}, '$.*'), lambda v: json_type(v) = 'ARRAY')), false) THEN 'object'
     WHEN json_type({c}) = 'OBJECT' THEN 'record' ELSE 'bad' END"""
# rows agree: an array has n entries; an object's list values have n each
_ROWS_OK = """CASE {c}_kind WHEN 'none' THEN true WHEN 'bad' THEN false WHEN 'record' THEN n = 1
     WHEN 'object' THEN coalesce(list_bool_and(list_transform(json_extract({c}, '$.*'),
         lambda v: json_array_length(v) = n)), true)
     ELSE json_array_length({c}) = n END"""


def _prepared(table: pa.Table, include_shadow: bool) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopstack.serving._prediction_log import predictions_schema

    if not isinstance(table, pa.Table):
        raise Invalid(
            f"expected the predictions stream as a pyarrow.Table; got {type(table).__name__}",
            field="table",
        )
    missing = [c for c in ("ts", "request_id", "output") if c not in table.column_names]
    if missing:
        raise Invalid(
            f"a predictions table needs the columns ts, request_id and output; {missing} "
            f"are missing from {excerpt(table.column_names)}",
            field="table",
        )
    for f in predictions_schema():
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    if not include_shadow:
        table = table.filter(pc.invert(table["shadow"].fill_null(False)))
    return table.append_column("_req", pa.array(range(table.num_rows), pa.int64()))


def flatten_predictions(table: pa.Table, *, include_shadow: bool = False) -> pa.Table:
    """The ``predictions`` stream ``table`` as one row per model row.

    Columns: ts, request_id, row (int32, the row's index in its request), endpoint,
    model_version, arm, latency_ms (and shadow with ``include_shadow``), the input
    columns, the enriched feature columns (``feature.<name>`` where a name is an
    input's too), ``prediction`` (multi-output predictions as JSON text) and
    ``proba_0..proba_{k-1}`` for a classifier. Ordered as the requests, then rows.
    Requests that do not parse are skipped and counted: ``skipped_requests(result)``.

    >>> flat = flatten_predictions(plog.read_predictions("churn"))  # doctest: +SKIP
    """

    table = _prepared(table, include_shadow)
    con = _cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("p", table)
        flat, skipped = _flatten(con, include_shadow, table.num_rows)
    finally:
        con.close()
    meta = dict(flat.schema.metadata or {})
    meta[SKIPPED_KEY] = str(skipped).encode()
    return flat.replace_schema_metadata(meta)


_DUCK: tuple[int, Any] | None = None
_DUCK_LOCK = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection (a cursor: its own temporary tables) on this process's in-memory
    database; opening a database costs tens of milliseconds, a cursor about one."""
    global _DUCK
    import duckdb

    with _DUCK_LOCK:
        if _DUCK is None or _DUCK[0] != os.getpid():  # a forked child opens its own
            _DUCK = (os.getpid(), duckdb.connect())
        return _DUCK[1].cursor()  # type: ignore[no-any-return]


def skipped_requests(flat: pa.Table) -> int:
    """How many requests ``flatten_predictions`` skipped to give ``flat`` (0 if unknown)."""
    meta = flat.schema.metadata or {}
    return int(meta.get(SKIPPED_KEY, b"0"))


def _value(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The one value ``sql`` answers (the whole result fetched, so the connection is free)."""
    rows = con.execute(sql).fetchall()
    return rows[0][0] if rows else None


def _flatten(
    con: duckdb.DuckDBPyConnection, include_shadow: bool, total: int
) -> tuple[pa.Table, int]:
    # one pass: each document parsed by try_cast (invalid: NULL), then its kind and rows
    con.execute(
        "CREATE TEMP TABLE good AS WITH parsed AS (SELECT _req, "
        "inputs IS NULL AS no_inputs, try_cast(inputs AS JSON) AS inputs, "
        "features IS NULL AS no_features, try_cast(features AS JSON) AS features, "
        "try_cast(output AS JSON) AS output FROM p), "
        "shaped AS (SELECT _req, inputs, features, output, "
        + _KIND.format(c="inputs")
        + " AS inputs_kind, "
        + _KIND.format(c="features")
        + " AS features_kind, json_array_length(output, '$.predict')::BIGINT AS n, "
        "json_array_length(output, '$.predict_proba') AS n_proba FROM parsed "
        "WHERE output IS NOT NULL AND (no_inputs OR inputs IS NOT NULL) "
        "AND (no_features OR features IS NOT NULL) AND json_type(output, '$.predict') = 'ARRAY') "
        "SELECT * EXCLUDE (n_proba) FROM shaped WHERE "
        + _ROWS_OK.format(c="inputs")
        + " AND "
        + _ROWS_OK.format(c="features")
        + " AND (n_proba IS NULL OR n_proba = n)"
    )
    skipped = total - int(_value(con, "SELECT count(*) FROM good"))

    # each row's structure, grouped: a window holds a few distinct ones, merged here
    found = con.execute(
        "SELECT 'inputs', inputs_kind, json_structure(inputs) AS s FROM good GROUP BY ALL "
        "UNION ALL SELECT 'features', features_kind, json_structure(features) FROM good "
        "GROUP BY ALL UNION ALL SELECT 'output', '', json_structure(output) FROM good GROUP BY ALL"
    ).fetchall()
    merged: dict[tuple[str, str], Any] = {}
    for source, kind, structure in found:
        if structure is None:
            continue
        value = json.loads(structure)
        key = (source, kind)
        merged[key] = _merge(merged[key], value) if key in merged else value
    relations: dict[str, list[tuple[str, bool]]] = {}
    for source, default in (("inputs", "input"), ("features", "feature")):
        parts = []
        for kind in ("array", "object", "record", "records"):
            parsed = merged.get((source, kind))
            if parsed in (None, "NULL"):
                continue
            part = _relation(source, kind, parsed, default)
            if part is not None:
                parts.append(part)
        cols: dict[str, bool] = {}
        for part in parts:
            for name, two_d in part.columns:
                cols[name] = cols.get(name, False) or two_d
        if parts:
            union = " UNION ALL BY NAME ".join(f"({part.sql})" for part in parts)
            con.execute(f"CREATE TEMP TABLE rel_{source} AS {union}")
        relations[source] = list(cols.items())

    out = merged.get(("output", ""))
    out = out if isinstance(out, dict) else {}
    predict = _spec(out.get("predict", ["VARCHAR"]))
    if not isinstance(predict, list) or isinstance(predict[0], list):
        predict = ["VARCHAR"]  # multi-output: each row's prediction as JSON text
    spec: dict[str, Any] = {"predict": predict}
    has_proba = _depth(out.get("predict_proba")) == 2
    if has_proba:
        spec["predict_proba"] = [["DOUBLE"]]
    proba = ", unnest(o.predict_proba) AS proba" if has_proba else ""
    con.execute(
        "CREATE TEMP TABLE rel_output AS SELECT _req, unnest(range(n)) AS row, "
        f"unnest(o.predict) AS prediction{proba} FROM (SELECT _req, n, "
        f"from_json(output, {_lit(json.dumps(spec))}) AS o FROM good)"
    )

    select = [f"p.{_q(c)}" if c != "row" else "o.row::INTEGER AS row" for c in _BASE]
    if include_shadow:
        select.append("p.shadow")
    joins = []
    taken = set(_RESERVED)
    for source, alias, prefix in (("inputs", "i", "input."), ("features", "f", "feature.")):
        if not relations[source]:
            continue
        joins.append(
            f"LEFT JOIN rel_{source} AS {alias} ON {alias}._req = o._req AND {alias}.row = o.row"
        )
        mine = set()
        for name, two_d in relations[source]:
            base = prefix + name if name in taken else name
            if two_d:
                width = _value(con, f"SELECT coalesce(max(len({_q(name)})), 0) FROM rel_{source}")
                if width == 1:
                    select.append(f"{alias}.{_q(name)}[1] AS {_q(base)}")
                for j in range(int(width) if width != 1 else 0):
                    select.append(f"{alias}.{_q(name)}[{j + 1}] AS {_q(f'{base}_{j}')}")
            else:
                select.append(f"{alias}.{_q(name)} AS {_q(base)}")
            mine.add(name)
        taken |= mine
    select.append("o.prediction")
    if has_proba:
        k = _value(con, "SELECT coalesce(max(len(proba)), 0) FROM rel_output")
        select += [f"o.proba[{j + 1}] AS proba_{j}" for j in range(int(k))]
    sql = (
        f"SELECT {', '.join(select)} FROM rel_output AS o JOIN p ON p._req = o._req "
        + " ".join(joins)
        + " ORDER BY o._req, o.row"
    )
    return con.sql(sql).to_arrow_table(), skipped
