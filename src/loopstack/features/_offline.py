"""Point-in-time correct training sets: one DuckDB ASOF LEFT JOIN per feature view.

The rules (DESIGN.md, "Point-in-time join"), for each entity row and feature view:

- the visible rows have the same join key values and ``feature_ts <= entity_ts`` (equal
  timestamps included); event time decides, not when a row was written, so a
  late-arriving row whose event time is before the entity's is visible;
- with a TTL, also ``feature_ts >= entity_ts - ttl``: a row exactly one TTL old is visible;
- the latest visible row wins as a whole: its NULLs are not filled from older rows;
- among rows with the same key and the same timestamp, the last written wins (in a file:
  the later row; in a directory: the later file in name order, then the later row);
- every entity row comes back, in its original order, duplicates included, with NULLs
  where no row is visible (Feast drops those rows; loopstack keeps them);
- timestamps compare as instants: tz-aware values are converted to UTC and naive values
  are taken to be UTC, on both sides.

Everything that can be checked is checked before the join runs: the entity DataFrame's
timestamp column and join keys (Invalid), feature refs (NotFound listing what exists),
source files (NotFound naming the path), and each source's schema against its
declaration (Conflict naming the field, declared vs found).

How ties are broken cheaply: the ASOF inequality runs on one integer that packs the
event time (relative to the source's earliest) above the row's write order, so "latest
time, then last written" is a single comparison; it is a BIGINT when it fits in 63 bits
(30 days of microseconds beside a million rows do) and a HUGEINT otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from loopstack.errors import Conflict, Invalid, LoopstackError, NotFound
from loopstack.features._definitions import FeatureView, OnDemandFeatureView
from loopstack.features._sources import ORDER_COLUMN, duckdb_connect
from loopstack.features._types import compatible, dtype_of_arrow

if TYPE_CHECKING:
    from loopstack.features._store import FeatureStore

__all__ = [
    "HistoricalPlan",
    "check_view_source",
    "get_historical_features",
    "join_features",
    "parse_refs",
    "plan_historical",
    "point_in_time_join",
]

_ROW = "__ls_row"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _ViewRequest:
    view: FeatureView
    features: list[str] = field(default_factory=list)  # in request order
    alias: str = ""


def parse_refs(
    store: FeatureStore, features: Any
) -> tuple[
    dict[str, _ViewRequest], list[tuple[OnDemandFeatureView, list[str]]], list[tuple[str, str]]
]:
    """Resolve ``["view:feature", "view:*", ...]``: batch views with the features to join,
    on-demand views with the features asked for, and the output order as (view, feature)."""
    if isinstance(features, str) or not isinstance(features, list | tuple) or not features:
        raise Invalid(
            f"features must be a non-empty list of 'view:feature' references; got {features!r}",
            field="features",
        )
    views: dict[str, Any] = {}
    batch: dict[str, _ViewRequest] = {}
    odfvs: dict[str, tuple[OnDemandFeatureView, list[str]]] = {}
    order: list[tuple[str, str]] = []
    for ref in features:
        if (
            not isinstance(ref, str)
            or ref.count(":") != 1
            or ref.startswith(":")
            or ref.endswith(":")
        ):
            raise Invalid(
                f"a feature reference must look like 'view:feature'; got {ref!r}", field="features"
            )
        vname, fname = ref.split(":")
        if vname not in views:
            views[vname] = store.get_feature_view(vname)  # NotFound lists the views
        view = views[vname]
        names = view.feature_names
        wanted = names if fname == "*" else [fname]
        for f in wanted:
            if f not in names:
                raise NotFound(
                    f"feature view {vname!r} has no feature {f!r}; its features: "
                    f"{', '.join(names) or 'none'}"
                )
            if (vname, f) in order:
                continue
            order.append((vname, f))
            if isinstance(view, OnDemandFeatureView):
                odfvs.setdefault(vname, (view, []))[1].append(f)
            else:
                batch.setdefault(
                    vname, _ViewRequest(store.registry.resolve_entities(view))
                ).features.append(f)
    for odfv, _ in odfvs.values():  # an on-demand view needs all its sources' features
        for src in odfv.source_views:
            req = batch.setdefault(src.name, _ViewRequest(store.registry.resolve_entities(src)))
            for f in src.feature_names:
                if f not in req.features:
                    req.features.append(f)
    return batch, list(odfvs.values()), order


def _entity_times(entity_df: Any, column: str) -> Any:
    """The entity timestamps as a UTC ``DatetimeIndex``-like Series (naive = UTC)."""
    import pandas as pd

    col = entity_df[column]
    try:
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            return col.dt.tz_convert("UTC")
        if pd.api.types.is_datetime64_dtype(col.dtype):
            return col.dt.tz_localize("UTC")
        return pd.to_datetime(col, utc=True)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"the entity DataFrame's timestamp column {column!r} must hold "
            f"datetimes; got values like {col.iloc[0]!r} ({exc})",
            field=column,
        ) from exc


def _epoch(times: Any, unit: str) -> Any:
    """int64 epoch values (``unit`` "us" or "ns") of UTC times; NaT -> NA-marked mask."""
    import numpy as np

    values = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    nat = np.isnat(values)
    ns = values.view(np.int64)
    out = ns if unit == "ns" else np.floor_divide(ns, 1000)
    return out, nat


#: DuckDB's name of each declared numeric type (a compatible source column is cast to it)
_SQL_TYPES = {"int32": "INTEGER", "int64": "BIGINT", "float32": "FLOAT", "float64": "DOUBLE"}


def check_view_source(view: FeatureView, con: Any, *, with_order: bool = True) -> tuple[str, str]:
    """The source's FROM expression and time unit, after checking it against the view.

    What ``apply`` checks and what ``get_historical_features`` checks again: the source is
    readable (NotFound naming the path, or why an in-memory source is gone), and has the
    join keys, the timestamp field (holding timestamps) and every declared feature with a
    compatible type (``Conflict`` naming the view, the column, what was declared and what
    was found). A compatible column of another type (int32 for int64) is cast to the
    declared type.
    """
    src = view.source
    src.check_readable()
    try:
        rel = src.relation_sql(con, with_order=with_order)
        schema = con.sql(f"SELECT * FROM {rel} LIMIT 0").to_arrow_table().schema
    except LoopstackError:
        raise
    except Exception as exc:  # duckdb raises its own IOException, InvalidInputException, ...
        raise NotFound(
            f"cannot read the source of feature view {view.name!r} ({src.describe()}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    found = {f.name: f.type for f in schema}
    columns = ", ".join(n for n in found if n != ORDER_COLUMN) or "none"
    ts = view.timestamp_field
    for key in [*view.join_keys, ts]:
        if key not in found:
            raise Conflict(
                f"the source of feature view {view.name!r} ({src.describe()}) has "
                f"no column {key!r} (declared as a "
                f"{'timestamp field' if key == ts else 'join key'}); it has {columns}",
                field=key,
            )
    if dtype_of_arrow(found[ts]) != "timestamp":
        raise Conflict(
            f"the timestamp field {ts!r} of feature view {view.name!r} must hold "
            f"timestamps; the source ({src.describe()}) has {found[ts]}",
            field=ts,
        )
    casts = []
    for f in view.schema:
        if f.name not in found:
            raise Conflict(
                f"the source of feature view {view.name!r} ({src.describe()}) "
                f"has no column for the declared feature {f.name!r} ({f.dtype}); "
                f"found columns {columns}",
                field=f.name,
            )
        if str(found[f.name]) == "null":
            continue  # a column of NULLs only fits any type
        got = dtype_of_arrow(found[f.name])
        if not compatible(f.dtype, got):
            raise Conflict(
                f"feature {view.name}:{f.name} is declared {f.dtype} but the source "
                f"({src.describe()}) has {got}",
                field=f.name,
            )
        if got != f.dtype and f.dtype in _SQL_TYPES:
            casts.append(f"CAST({_q(f.name)} AS {_SQL_TYPES[f.dtype]}) AS {_q(f.name)}")
    if casts:
        rel = f"(SELECT * REPLACE ({', '.join(casts)}) FROM {rel})"
    unit = "ns" if getattr(found[ts], "unit", "us") == "ns" else "us"
    return rel, unit


def _check_source(req: _ViewRequest, con: Any) -> tuple[str, str]:
    return check_view_source(req.view, con)


def point_in_time_join(
    entity_df: Any, requests: list[_ViewRequest], *, timestamp_column: str = "event_timestamp"
) -> dict[tuple[str, str], Any]:
    """The PIT join itself: ``{(view, feature): pyarrow column}`` in entity row order."""
    import numpy as np
    import pyarrow as pa

    times = _entity_times(entity_df, timestamp_column)
    n = len(entity_df)
    con = duckdb_connect()
    try:
        plans = []
        for i, req in enumerate(requests):
            req.alias = f"f{i}"
            rel, unit = _check_source(req, con)
            plans.append((req, rel, unit))
        columns: dict[str, Any] = {_ROW: pa.array(np.arange(n, dtype=np.int64))}
        keys_needed: list[str] = []
        for req in requests:
            for k in req.view.join_keys:
                if k not in keys_needed:
                    keys_needed.append(k)
        for k in keys_needed:
            columns[k] = pa.Array.from_pandas(entity_df[k]) if n else pa.array([], pa.null())
        for unit in sorted({u for _, _, u in plans}):
            epoch, nat = _epoch(times, unit)
            columns[f"__ls_t_{unit}"] = pa.array(epoch, mask=nat)
        con.register("__ls_entities", pa.table(columns))
        select = [f"e.{_ROW}"]
        joins = []
        for req, rel, unit in plans:
            a, v, ts = req.alias, req.view, req.view.timestamp_field
            t_expr = f"epoch_{unit}({_q(ts)})" if unit == "us" else f"epoch_ns({_q(ts)})"
            bounds = _bounds_from_metadata(v, unit)
            lo, hi, count = (
                bounds
                if bounds is not None
                else con.sql(
                    f"SELECT min({t_expr}), max({t_expr}), count(*) FROM {rel}"
                ).fetchall()[0]
            )
            if lo is None:  # no rows with a timestamp: nothing is ever visible
                lo, hi = 0, 0
            # write orders are 0..count-1, so ``mult - 1`` is above every one of them
            order_bits = max(int(count or 0) - 1, 1).bit_length()
            if (hi - lo + 1).bit_length() + order_bits <= 63:
                kt, mult = "BIGINT", 1 << order_bits
            else:
                kt, mult = "HUGEINT", 1 << 64
            feats = ", ".join(_q(f) for f in req.features)
            keys = ", ".join(_q(k) for k in v.join_keys)
            inner = (
                f"SELECT {keys}, {t_expr} AS __t, "
                f"(CAST({t_expr} - {lo} AS {kt}) * {mult}) + {ORDER_COLUMN} AS __k"
                f"{', ' + feats if feats else ''} FROM {rel} WHERE {_q(ts)} IS NOT NULL"
            )
            et = f"e.__ls_t_{unit}"
            ek = (
                f"CASE WHEN {et} < {lo} THEN CAST(-1 AS {kt}) ELSE "
                f"CAST(least({et}, {hi}) - {lo} AS {kt}) * {mult} + {mult - 1} END"
            )
            on = " AND ".join(f"e.{_q(k)} = {a}.{_q(k)}" for k in v.join_keys)
            joins.append(f"ASOF LEFT JOIN ({inner}) {a} ON {on} AND ({ek}) >= {a}.__k")
            ttl_cond = None
            if v.ttl is not None:
                ttl = (v.ttl // timedelta(microseconds=1)) * (1000 if unit == "ns" else 1)
                ttl_cond = f"{a}.__t >= {et} - {ttl}"
            for f in req.features:
                col = f"{a}.{_q(f)}"
                expr = f"CASE WHEN {ttl_cond} THEN {col} END" if ttl_cond else col
                select.append(f"{expr} AS {_q(a + '__' + f)}")
        sql = f"SELECT {', '.join(select)} FROM __ls_entities e {' '.join(joins)}"
        try:
            table = con.sql(sql).to_arrow_table()
        except Exception as exc:
            raise _translate(exc, requests, entity_df) from exc
    finally:
        con.close()
    rows = table.column(_ROW).to_numpy()
    if n and not (rows[:-1] < rows[1:]).all():
        where = np.empty(n, dtype=np.int64)
        where[rows] = np.arange(n, dtype=np.int64)  # a scatter: no sort needed
        table = table.take(pa.array(where))
    out: dict[tuple[str, str], Any] = {}
    for req in requests:
        for f in req.features:
            out[(req.view.name, f)] = table.column(f"{req.alias}__{f}")
    return out


def _bounds_from_metadata(view: FeatureView, unit: str) -> tuple[int, int, int] | None:
    """(earliest, latest, rows) of a Parquet source from its footers, or None.

    Bounds only need to enclose the data, so footer statistics (no scan) are enough.
    """
    from loopstack.features._sources import FileSource

    src = view.source
    if not isinstance(src, FileSource) or not src._is_local():
        return None
    import pyarrow.parquet as pq

    path = src._local()
    files = src._files() if path.is_dir() else [str(path)]
    lo: int | None = None
    hi: int | None = None
    rows = 0
    try:
        for f in files:
            meta = pq.read_metadata(f)
            rows += meta.num_rows
            idx = meta.schema.to_arrow_schema().get_field_index(view.timestamp_field)
            if idx < 0:
                return None
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                if rg.num_rows == 0:
                    continue
                stats = rg.column(idx).statistics
                if stats is None or not stats.has_min_max:
                    return None
                a, b = _epoch_of(stats.min, unit), _epoch_of(stats.max, unit)
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
    except (OSError, ValueError, TypeError):
        return None
    if lo is None or hi is None:
        return (0, 0, rows)
    return lo - 1, hi + 1, rows


def _epoch_of(value: Any, unit: str) -> int:
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    ns = int(ts.as_unit("ns").value)
    return ns if unit == "ns" else ns // 1000


def _translate(exc: Exception, requests: list[_ViewRequest], entity_df: Any) -> Exception:
    text = str(exc)
    if "Cannot compare" in text or "Conversion Error" in text or "Binder Error" in text:
        keys = sorted({k for r in requests for k in r.view.join_keys})
        types = {k: str(entity_df[k].dtype) for k in keys}
        return Invalid(
            f"the join keys cannot be compared with the sources' columns (entity "
            f"DataFrame types: {types}): {text.splitlines()[0]}",
            field="entity_df",
        )
    return exc


def _check_entity_df(entity_df: Any, timestamp_column: str, requests: list[_ViewRequest]) -> None:
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        raise Invalid(
            "entity_df must be a pandas DataFrame with the join keys and a "
            f"timestamp column; got {type(entity_df).__name__} instead",
            field="entity_df",
        )
    _check_columns([str(c) for c in entity_df.columns], timestamp_column, requests)


def _check_columns(columns: list[str], timestamp_column: str, requests: list[_ViewRequest]) -> None:
    if timestamp_column not in columns:
        raise Invalid(
            f"the entity DataFrame has no timestamp column {timestamp_column!r} "
            f"(columns: {', '.join(columns)}); add it or pass timestamp_column=",
            field=timestamp_column,
        )
    for req in requests:
        missing = [k for k in req.view.join_keys if k not in columns]
        if missing:
            raise Invalid(
                f"the entity DataFrame has no join key {', '.join(map(repr, missing))} "
                f"of feature view {req.view.name!r} (columns: {', '.join(columns)})",
                field=missing[0],
            )


@dataclass
class HistoricalPlan:
    """A training-set retrieval resolved against the registry and checked against the
    entity columns: what ``join_features`` needs, with no store (so it can be shipped to
    worker processes that join chunk by chunk, as batch scoring does)."""

    requests: list[_ViewRequest]
    odfvs: list[tuple[OnDemandFeatureView, list[str]]]
    order: list[tuple[str, str]]
    full_feature_names: bool
    timestamp_column: str

    @property
    def output_names(self) -> list[str]:
        """The feature columns the join adds, in request order."""
        full = self.full_feature_names
        return [f"{v}__{f}" if full else f for v, f in self.order]

    @property
    def entity_columns(self) -> list[str]:
        """The entity columns the join reads: join keys, the timestamp, request values."""
        cols: list[str] = []
        for req in self.requests:
            cols.extend(req.view.join_keys)
        cols.append(self.timestamp_column)
        for odfv, _ in self.odfvs:
            cols.extend(f.name for rs in odfv.request_sources for f in rs.schema)
        return list(dict.fromkeys(cols))


def plan_historical(
    store: FeatureStore,
    columns: list[str],
    features: Any,
    *,
    full_feature_names: bool = False,
    timestamp_column: str = "event_timestamp",
) -> HistoricalPlan:
    """Resolve ``features`` and check them against the entity ``columns``: the timestamp
    column, each view's join keys and each on-demand view's request values are there,
    and no feature would land on a column the entity rows already have (``Invalid``)."""
    batch, odfvs, order = parse_refs(store, features)
    requests = list(batch.values())
    _check_columns(columns, timestamp_column, requests)
    for odfv, _ in odfvs:
        for rs in odfv.request_sources:
            missing = [f.name for f in rs.schema if f.name not in columns]
            if missing:
                raise Invalid(
                    f"on-demand feature view {odfv.name!r} needs the request "
                    f"column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(map(repr, missing))} in the entity DataFrame",
                    field=missing[0],
                )
    names: dict[str, str] = {}
    for vname, f in order:
        out_name = f"{vname}__{f}" if full_feature_names else f
        if out_name in names or out_name in columns:
            other = names.get(out_name, "the entity DataFrame")
            raise Invalid(
                f"feature {vname}:{f} and {other} would both be column {out_name!r};"
                " pass full_feature_names=True",
                field="features",
            )
        names[out_name] = f"{vname}:{f}"
    return HistoricalPlan(requests, odfvs, order, full_feature_names, timestamp_column)


def join_features(plan: HistoricalPlan, entity_df: Any) -> Any:
    """``entity_df`` (index reset) with the plan's features beside it, point-in-time
    correct (this module's rules); on-demand views computed from the joined values."""
    import pandas as pd

    requests, odfvs = plan.requests, plan.odfvs
    joined = (
        point_in_time_join(entity_df, requests, timestamp_column=plan.timestamp_column)
        if requests
        else {}
    )
    base = entity_df.reset_index(drop=True)
    frames = {(v, f): col.to_pandas() for (v, f), col in joined.items()}
    computed: dict[tuple[str, str], Any] = {}
    for odfv, _ in odfvs:
        inputs = base.copy()
        for src in odfv.source_views:
            for f in src.feature_names:
                inputs[f] = frames[(src.name, f)].to_numpy()
                inputs[f"{src.name}__{f}"] = inputs[f]
        result = odfv.transform(inputs)
        for f in odfv.feature_names:
            computed[(odfv.name, f)] = result[f]
    extra = {}
    for (vname, f), out_name in zip(plan.order, plan.output_names, strict=True):
        series = computed.get((vname, f))
        if series is None:
            series = frames[(vname, f)]
        extra[out_name] = series.reset_index(drop=True)
    return pd.concat([base, pd.DataFrame(extra)], axis=1) if extra else base


def get_historical_features(
    store: FeatureStore,
    entity_df: Any,
    features: Any,
    *,
    full_feature_names: bool = False,
    register_as: str | None = None,
    timestamp_column: str = "event_timestamp",
    service: str | None = None,
) -> Any:
    """See ``FeatureStore.get_historical_features`` and this module's docstring."""
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        _check_entity_df(entity_df, timestamp_column, [])
    plan = plan_historical(
        store,
        [str(c) for c in entity_df.columns],
        features,
        full_feature_names=full_feature_names,
        timestamp_column=timestamp_column,
    )
    out = join_features(plan, entity_df)
    if register_as is not None:
        from loopstack.features._training_sets import register_training_set

        order, odfvs = plan.order, plan.odfvs
        register_training_set(
            store,
            register_as,
            out,
            refs=[f"{v}:{f}" for v, f in order],
            views=sorted(
                {v for v, _ in order} | {s.name for o, _ in odfvs for s in o.source_views}
            ),
            service=service,
        )
    return out
