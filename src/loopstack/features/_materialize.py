"""Materialization and push: the newest source rows per entity into the online store.

``materialize(store, start, end)`` reads each view's source for event times in
``(start, end]``, keeps the newest row per entity (ties: the row written last) and
writes every row of a view in one atomic step of the online store, so a failure
halfway leaves the previous values. Each run is recorded (and audited) in
``feature_materializations``; ``materialize_incremental`` continues from there.
DuckDB picks the newest rows (in key order, which the SQLite store writes fastest);
the values are encoded as binary rows (``encode_arrow_rows``: numpy writes the rows of
numeric and boolean columns into one buffer, other rows take one msgpack ``pack``
each); a chunk holding a value a binary row cannot hold (a date, a decimal)
is encoded as JSON by DuckDB (``to_json``) instead, which every reader also decodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from loopstack._progress import phases
from loopstack.errors import Invalid, LoopstackError, NotFound
from loopstack.features.online import (
    OnlineBatch,
    OnlineStore,
    encode_arrow_rows,
    encode_key,
    open_online_store,
)

__all__ = [
    "MaterializationResult",
    "ViewMaterialization",
    "materialize",
    "materialize_incremental",
    "online_store",
    "online_view_key",
    "push",
]

_ROW_INDEX = "__ls_rn"


@dataclass(frozen=True)
class ViewMaterialization:
    """What materializing one view did; ``error`` says why it failed (empty: written)."""

    view: str
    version: int
    start: datetime | None
    end: datetime
    rows_read: int
    rows_written: int
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class MaterializationResult:
    """One ``ViewMaterialization`` per view, in the order they ran."""

    views: list[ViewMaterialization] = field(default_factory=list)

    @property
    def failed(self) -> list[ViewMaterialization]:
        """The views that failed (their ``error`` says why)."""
        return [v for v in self.views if v.error]

    def raise_for_errors(self) -> None:
        """A ``LoopstackError`` naming every failed view (and what was written), if any: of
        the failures' class when they share one (``NotFound``), its ``result`` this report."""
        failed = self.failed
        if not failed:
            return
        written = [v.view for v in self.views if not v.error]
        what = "; ".join(f"{v.view!r}: {v.error}" for v in failed)
        rest = (
            f"the other views were written: {', '.join(written)}"
            if written
            else "no other view was materialized"
        )
        from loopstack import errors

        kinds = {v.error.partition(":")[0] for v in failed}
        cls = getattr(errors, kinds.pop(), LoopstackError) if len(kinds) == 1 else LoopstackError
        if not (isinstance(cls, type) and issubclass(cls, LoopstackError)):
            cls = LoopstackError
        err = cls(
            f"materialize failed for {len(failed)} view{'s' if len(failed) > 1 else ''} "
            f"({what}); {rest}"
        )
        err.result = self  # type: ignore[attr-defined]
        raise err

    def to_dict(self) -> dict[str, Any]:
        return {
            "views": [
                {
                    **asdict(v),
                    "start": v.start.isoformat() if v.start else None,
                    "end": v.end.isoformat(),
                }
                for v in self.views
            ]
        }


# -- shared helpers (also used by the online read, skew and freshness modules) ----------------
def online_store(store: Any) -> OnlineStore:
    """The store's online store, opened once and kept on the FeatureStore."""
    online = getattr(store, "_online", None)
    if online is None or getattr(online, "url", None) != store.online_url:
        online = store._online = open_online_store(store.online_url)
    return online  # type: ignore[no-any-return]


def online_view_key(store: Any, name: str) -> str:
    """The view's name in the online store (projects other than the default are prefixed)."""
    pid = getattr(store, "project_id", 0) or 0
    return name if pid == 0 else f"{pid}:{name}"


def _utc(value: Any, what: str) -> datetime:
    from loopstack.features._sources import to_utc

    return to_utc(value, what).replace(tzinfo=UTC)


def _us(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _ms(ts: datetime) -> int:
    return _us(ts) // 1000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value_sql(name: str, dtype: str) -> str:
    col = _quote(name)
    if dtype == "timestamp":
        return f"epoch_us(CAST({col} AS TIMESTAMPTZ))"
    if dtype == "bytes":
        return f"base64(CAST({col} AS BLOB))"
    return col


def _newest_rows_sql(view: Any, table: str, after: datetime | None, *, packed: bool = True) -> str:
    """The newest row per entity: join keys, ``__ls_ts`` (us) and the values.

    ``packed``: the values as one JSON object ``__ls_v``; otherwise one column per
    feature, ``__ls_f0``, ``__ls_f1``... in schema order, rows in key order.
    """
    keys = ", ".join(_quote(k) for k in view.join_keys)
    ts = _quote(view.timestamp_field)
    where = [f"{ts} IS NOT NULL", *(f"{_quote(k)} IS NOT NULL" for k in view.join_keys)]
    if after is not None:
        where.append(f"{ts} > '{after.isoformat()}'::TIMESTAMPTZ")
    if packed:
        values = ", ".join(
            f"{_quote(f.name)} := {_value_sql(f.name, f.dtype)}" for f in view.schema
        )
        selected = (f"to_json(struct_pack({values}))::VARCHAR" if values else "'{}'") + " AS __ls_v"
        order = ""
    else:
        selected = (
            ", ".join(
                f"{_value_sql(f.name, f.dtype)} AS __ls_f{i}" for i, f in enumerate(view.schema)
            )
            or "NULL AS __ls_none"
        )
        order = " ORDER BY " + ", ".join(f"CAST({_quote(k)} AS VARCHAR)" for k in view.join_keys)
    return (
        f"SELECT {keys}, epoch_us(CAST({ts} AS TIMESTAMPTZ)) AS __ls_ts, "
        f"{selected} FROM {table} WHERE {' AND '.join(where)} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} "
        f"ORDER BY {ts} DESC, {_ROW_INDEX} DESC) = 1{order}"
    )


def _arrow_batches(data: Any) -> Iterator[Any]:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        yield data
    elif isinstance(data, pa.RecordBatch):
        yield pa.Table.from_batches([data])
    elif isinstance(data, pa.RecordBatchReader):
        for batch in data:
            yield pa.Table.from_batches([batch])
    else:  # an iterable of Tables / RecordBatches (a streaming source)
        for part in data:
            yield from _arrow_batches(part)


def encode_batches(
    view: Any, data: Any, after: datetime | None, counter: list[int]
) -> Iterator[OnlineBatch]:
    """Newest row per entity of each Arrow chunk of ``data``, encoded for the online store.

    ``counter`` receives the rows read (a list so the caller sees it after the generator).
    """
    import numpy as np
    import pyarrow as pa

    from loopstack.features._sources import duckdb_connect

    names = [f.name for f in view.schema]
    con = duckdb_connect()
    try:
        for table in _arrow_batches(data):
            counter[0] += table.num_rows
            if table.num_rows == 0:
                continue
            chunk = table.append_column(_ROW_INDEX, pa.array(np.arange(table.num_rows)))
            con.register("__ls_chunk", chunk)
            out = con.sql(
                _newest_rows_sql(view, "__ls_chunk", after, packed=False)
            ).to_arrow_table()
            values: Sequence[str | bytes]
            try:
                values = encode_arrow_rows(
                    names,
                    [out.column(f"__ls_f{i}").combine_chunks() for i in range(len(names))],
                    out.num_rows,
                )
            except ValueError:  # a value a binary row cannot hold: JSON, as DuckDB writes it
                out = con.sql(_newest_rows_sql(view, "__ls_chunk", after)).to_arrow_table()
                values = out.column("__ls_v").to_pylist()
            con.unregister("__ls_chunk")
            key_cols = [out.column(k).to_pylist() for k in view.join_keys]
            if len(key_cols) == 1:  # encode_key((k,)) is str(k)
                keys = list(map(str, key_cols[0]))
            else:
                keys = [encode_key(k) for k in zip(*key_cols, strict=True)]
            yield OnlineBatch(keys, out.column("__ls_ts").to_pylist(), values)
    finally:
        con.close()


def _batch_views(store: Any, views: list[str] | None) -> list[Any]:
    from loopstack.features._definitions import FeatureView

    if views is None:
        return [v for v in store.list_feature_views() if isinstance(v, FeatureView) and v.online]
    out = []
    for name in views:
        view = store.get_feature_view(name)
        if not isinstance(view, FeatureView):
            raise Invalid(
                f"{name!r} is an on-demand feature view: it is computed at read "
                "time and has nothing to materialize",
                field="views",
            )
        out.append(view)
    return out


# -- the materialization log ------------------------------------------------------------------
def _record_start(
    store: Any, view: Any, version: int, start: datetime | None, end: datetime
) -> int:
    from sqlalchemy import insert

    from loopstack.store.metadata.schema import Materialization

    now = int(time.time() * 1000)
    row = {
        "project_id": store.project_id,
        "view_name": view.name,
        "view_version": version,
        "start_ts": None if start is None else _ms(start),
        "end_ts": _ms(end),
        "rows": 0,
        "online_url": _safe_url(store.online_url),
        "state": "running",
        "error": "",
        "created_at": now,
    }

    def run(conn: Any) -> int:
        return int(conn.execute(insert(Materialization).values(**row)).inserted_primary_key[0])

    return int(
        store.db.write(
            run,
            actor=store.actor,
            action="feature_view.materialize",
            object_type="feature_view",
            object_id=view.name,
            payload={k: row[k] for k in ("view_version", "start_ts", "end_ts", "online_url")},
            project_id=store.project_id,
        )
    )


def _record_end(store: Any, view: Any, record_id: int, rows: int, error: str = "") -> None:
    from sqlalchemy import update

    from loopstack.store.metadata.schema import Materialization

    values = {
        "rows": rows,
        "state": "failed" if error else "succeeded",
        "error": error,
        "finished_at": int(time.time() * 1000),
    }

    def run(conn: Any) -> None:
        conn.execute(
            update(Materialization).where(Materialization.id == record_id).values(**values)
        )

    store.db.write(
        run,
        actor=store.actor,
        action="feature_view.materialize_" + ("failed" if error else "succeeded"),
        object_type="feature_view",
        object_id=view.name,
        payload={"id": record_id, **values},
        project_id=store.project_id,
    )


def last_materialized_end(store: Any, view_name: str) -> datetime | None:
    """The end of the newest successful materialization of a view, or None."""
    from sqlalchemy import select

    from loopstack.store.metadata.schema import Materialization

    table = Materialization.__table__
    end = store.db.read(
        lambda c: c.execute(
            select(table.c.end_ts)
            .where(
                table.c.project_id == store.project_id,
                table.c.view_name == view_name,
                table.c.state == "succeeded",
            )
            .order_by(table.c.end_ts.desc())
            .limit(1)
        ).scalar()
    )
    return None if end is None else datetime.fromtimestamp(end / 1000, tz=UTC)


def _safe_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# -- materialize ------------------------------------------------------------------------------
def _materialize_view(
    store: Any, online: OnlineStore, view: Any, start: datetime | None, end: datetime
) -> ViewMaterialization:
    """Materialize one view; a failure is recorded and returned in ``error``, not raised."""
    version = store.feature_view_version(view.name).version
    record = _record_start(store, view, version, start, end)
    began = time.perf_counter()
    counter = [0]
    try:
        columns = [*view.join_keys, view.timestamp_field, *(f.name for f in view.schema)]
        data = view.source.read(columns=columns, start=start, end=end)
        written = online.write(
            online_view_key(store, view.name),
            encode_batches(view, data, start, counter),
            watermark=_us(end),
        )
    except Exception as exc:
        err = _translate(view, exc)
        _record_end(store, view, record, counter[0], f"{type(err).__name__}: {err}"[:2000])
        return ViewMaterialization(
            view.name,
            version,
            start,
            end,
            counter[0],
            0,
            time.perf_counter() - began,
            f"{type(err).__name__}: {err}",
        )
    except BaseException as exc:  # an interrupt: recorded, and it stops everything
        _record_end(store, view, record, counter[0], f"{type(exc).__name__}: {exc}"[:2000])
        raise
    _record_end(store, view, record, written)
    return ViewMaterialization(
        view.name, version, start, end, counter[0], written, time.perf_counter() - began
    )


def _translate(view: Any, exc: Exception) -> LoopstackError:
    """``exc`` as a loopstack error naming the view (a foreign one: its source too)."""
    if isinstance(exc, LoopstackError):
        if view.name in exc.message:
            return exc
        return type(exc)(f"feature view {view.name!r}: {exc.message}", field=exc.field)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return NotFound(
        f"cannot read the source of feature view {view.name!r} ({view.source.describe()}): {text}"
    )


def materialize(
    store: Any,
    start: Any,
    end: Any,
    views: list[str] | None = None,
    *,
    raise_on_error: bool = True,
) -> MaterializationResult:
    """Write the newest row per entity with event time in ``(start, end]`` to the online store.

    Each view is reported on its own; one that fails does not stop the others, and then
    (unless ``raise_on_error=False``) a ``LoopstackError`` names every failed view.

    >>> store.materialize(datetime(2024, 1, 1), datetime(2024, 2, 1), ["driver_stats"])
    """
    start_utc = None if start is None else _utc(start, "start")
    end_utc = _utc(end, "end")
    if start_utc is not None and start_utc >= end_utc:
        raise Invalid(
            f"materialize needs start < end; got start={start_utc.isoformat()} and "
            f"end={end_utc.isoformat()}",
            field="start",
        )
    online = online_store(store)
    chosen = _batch_views(store, views)
    with phases("materializing", [v.name for v in chosen]) as step:
        done = []
        for v in chosen:
            step(v.name)
            done.append(_materialize_view(store, online, v, start_utc, end_utc))
    result = MaterializationResult(done)
    if raise_on_error:
        result.raise_for_errors()
    return result


def materialize_incremental(
    store: Any,
    end: Any = None,
    views: list[str] | None = None,
    *,
    raise_on_error: bool = True,
) -> MaterializationResult:
    """Materialize each view from where its last successful run ended up to ``end`` (now).

    A view never materialized starts at ``end - ttl`` (from the beginning without a TTL).
    Failures are reported as ``materialize`` reports them.
    """
    end_utc = datetime.now(UTC) if end is None else _utc(end, "end")
    online = online_store(store)
    results = []
    chosen = _batch_views(store, views)
    with phases("materializing", [v.name for v in chosen]) as step:
        for view in chosen:
            start = last_materialized_end(store, view.name)
            if start is None and view.ttl is not None:
                start = end_utc - view.ttl
            if start is not None and start >= end_utc:
                continue  # already materialized up to end
            step(view.name)
            results.append(_materialize_view(store, online, view, start, end_utc))
    result = MaterializationResult(results)
    if raise_on_error:
        result.raise_for_errors()
    return result


# -- push -------------------------------------------------------------------------------------


def pandas_to_arrow(df: Any) -> Any:
    """``df`` as a pyarrow Table; time-zone-aware columns become UTC timestamps."""
    import pandas as pd
    import pyarrow as pa

    tz_cols = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if not tz_cols:
        return pa.Table.from_pandas(df, preserve_index=False)
    # converted here: pandas warns when pyarrow reads such columns through Series.values
    plain = pa.Table.from_pandas(df.drop(columns=tz_cols), preserve_index=False)
    out = {}
    for c in df.columns:
        if c in tz_cols:
            naive = df[c].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
            out[str(c)] = pa.array(naive).cast(pa.timestamp("ns", tz="UTC"))
        else:
            out[str(c)] = plain.column(str(c))
    return pa.table(out)


def _as_arrow(df: Any) -> Any:
    import pyarrow as pa

    if isinstance(df, pa.Table):
        return df
    import pandas as pd

    try:
        if isinstance(df, dict):
            return pa.table(df)
        if isinstance(df, list):
            return pa.Table.from_pylist(df)
        if isinstance(df, pd.DataFrame):
            return pandas_to_arrow(df)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise Invalid(f"the rows to push cannot be read as a table: {exc}", field="df") from exc
    raise Invalid(
        f"push takes a pandas DataFrame, a pyarrow Table, a dict of columns or a "
        f"list of row dicts; got {type(df).__name__} instead",
        field="df",
    )


def validate_rows(view: Any, table: Any) -> None:
    """Invalid naming the first missing or mistyped column of ``table`` for ``view``."""
    from loopstack.features._types import compatible, dtype_of_arrow

    present = set(table.column_names)
    for col, what in [
        *((k, "join key") for k in view.join_keys),
        (view.timestamp_field, "event timestamp"),
        *((f.name, "feature") for f in view.schema),
    ]:
        if col not in present:
            raise Invalid(
                f"rows pushed to {view.name!r} must have the {what} column {col!r}; "
                f"they have {', '.join(table.column_names) or 'no columns'}",
                field=col,
            )
    expected = {view.timestamp_field: "timestamp", **{f.name: f.dtype for f in view.schema}}
    for col, dtype in expected.items():
        arrow = table.schema.field(col).type
        if str(arrow) == "null":
            continue  # all nulls fit any type
        got = dtype_of_arrow(arrow)
        if not compatible(dtype, got):
            raise Invalid(
                f"column {col!r} pushed to {view.name!r} must be {dtype}; got {got} instead",
                field=col,
            )


def push(store: Any, view_name: str, df: Any) -> int:
    """Write streaming rows (join keys, event timestamp, every feature) to the online store.

    Rows are validated against the view's schema first; an invalid push writes nothing.
    Rows older than what is stored for their entity are dropped. Returns the rows kept.

    >>> store.push("driver_stats", pd.DataFrame({"driver_id": [1], "event_timestamp": [now],
    ...                                          "conv_rate": [0.5]}))
    """
    from loopstack.features._definitions import FeatureView

    view = store.get_feature_view(view_name)
    if not isinstance(view, FeatureView):
        raise Invalid(
            f"{view_name!r} is an on-demand feature view: it is computed at read "
            "time, so nothing can be pushed to it",
            field="view",
        )
    table = _as_arrow(df)
    validate_rows(view, table)
    batches: Iterable[OnlineBatch] = list(encode_batches(view, table, None, [0]))
    return online_store(store).write(online_view_key(store, view.name), batches)
