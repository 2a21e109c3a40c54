"""An append-only event log over the blob store and the metadata database.

``append(stream, table)`` writes the table as one Parquet segment (a
content-addressed blob, so its bytes are checked when a remote copy is
fetched) and then one ``event_segments`` row naming it, in a transaction
that appends no audit event. A crash between the two leaves an unreferenced
blob, never an index row without bytes. ``read(stream, since, until)`` asks
the index which segments overlap the window and lets DuckDB read and filter
them: local segments in place, remote ones through a local cache (a segment
never changes, so a cached copy never goes stale).

Every table carries a ``ts`` column (a timestamp; naive values are taken as
UTC), stored as ``timestamp[us, UTC]``. Windows are half-open: ``since <= ts
< until``, so consecutive windows never count a row twice.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, select

from loopstack.errors import Invalid, NotFound, StoreUnavailable, excerpt
from loopstack.store._stores import Stores
from loopstack.store.metadata.schema import EventSegment

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["EventLog", "Segment"]

_SEGMENTS = cast(Table, EventSegment.__table__)
_STREAM = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
TS = "ts"

#: a point in time: an aware datetime, a naive one (taken as UTC), or epoch milliseconds
When = dt.datetime | int


@dataclass(frozen=True)
class Segment:
    """One appended segment: its index row."""

    id: int
    stream: str
    min_ts: int  # epoch ms, floor of the segment's smallest ts
    max_ts: int  # epoch ms, ceiling of its largest ts
    rows: int
    digest: str
    size: int
    created_at: int  # epoch ms


def _epoch_us(value: When, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, dt.datetime | int):
        raise Invalid(
            f"the {field!r} must be a datetime or epoch milliseconds; got {excerpt(value)}",
            field=field,
        )
    if isinstance(value, int):
        return value * 1000
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _check_stream(stream: str) -> str:
    if not isinstance(stream, str) or not _STREAM.fullmatch(stream):
        raise Invalid(
            "the 'stream' must be 1-128 lowercase letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit; got {excerpt(stream)} instead",
            field="stream",
        )
    return stream


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_DUCK: tuple[int, Any] | None = None
_DUCK_LOCK = threading.Lock()


def _cursor() -> Any:
    """A fresh DuckDB connection (a cursor) on this process's in-memory database: opening
    a database costs tens of milliseconds, a cursor about one; each has its own state."""
    global _DUCK
    import duckdb

    with _DUCK_LOCK:
        if _DUCK is None or _DUCK[0] != os.getpid():  # a forked child opens its own
            _DUCK = (os.getpid(), duckdb.connect())
        return _DUCK[1].cursor()


class EventLog:
    """Append-only streams of Arrow rows for one project.

    >>> log = EventLog(open_stores(), project_id=0)          # doctest: +SKIP
    >>> log.append("predictions", table)                     # doctest: +SKIP
    >>> log.read("predictions", since=an_hour_ago)           # doctest: +SKIP
    """

    def __init__(
        self, stores: Stores, *, project_id: int = 0, cache_dir: str | Path | None = None
    ) -> None:
        self.db = stores.db
        self.blobs = stores.artifacts.blobs
        self.project_id = project_id
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None

    # -- writes -----------------------------------------------------------------------
    def append(self, stream: str, table: pa.Table) -> Segment | None:
        """Write ``table`` as one segment of ``stream``; None for an empty table.

        The table needs a ``ts`` timestamp column without nulls. Nothing here
        is audited: the index row is a plain insert.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        _check_stream(stream)
        if not isinstance(table, pa.Table):
            raise Invalid(
                f"expected a pyarrow.Table to append; got {type(table).__name__}", field="table"
            )
        if table.num_rows == 0:
            return None
        table = self._with_utc_ts(table)
        bounds = pc.min_max(table.column(TS).cast(pa.int64()))
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        fd, name = tempfile.mkstemp(suffix=".parquet", prefix="ls-segment-")
        os.close(fd)
        try:
            pq.write_table(table, name, compression="zstd")
            digest, size = self.blobs.put_file(Path(name))
        finally:
            os.unlink(name)
        row = {
            "project_id": self.project_id,
            "stream": stream,
            "min_ts": lo // 1000,
            "max_ts": -(-hi // 1000),
            "rows": table.num_rows,
            "digest": digest,
            "size": size,
            "created_at": int(time.time() * 1000),
        }

        def insert(conn: Connection) -> int:
            stmt = _SEGMENTS.insert().values(**row).returning(_SEGMENTS.c.id)
            return int(conn.execute(stmt).scalar_one())

        seg_id = self.db.write_unaudited(insert)
        return Segment(
            id=seg_id,
            stream=stream,
            min_ts=lo // 1000,
            max_ts=-(-hi // 1000),
            rows=table.num_rows,
            digest=digest,
            size=size,
            created_at=int(row["created_at"]),
        )

    @staticmethod
    def _with_utc_ts(table: pa.Table) -> pa.Table:
        import pyarrow as pa

        if TS not in table.column_names:
            raise Invalid(
                f"an event table needs a {TS!r} timestamp column; got columns "
                f"{excerpt(table.column_names)}",
                field=TS,
            )
        column = table.column(TS)
        if not pa.types.is_timestamp(column.type):
            raise Invalid(f"the {TS!r} column must be a timestamp; got {column.type}", field=TS)
        if column.null_count:
            raise Invalid(f"the {TS!r} column must not hold nulls; got {column.null_count}")
        target = pa.timestamp("us", "UTC")
        if column.type != target:
            # a naive timestamp is read as UTC; a zoned one keeps its instant
            column = column.cast(pa.timestamp(column.type.unit, "UTC")).cast(target)
            table = table.set_column(table.column_names.index(TS), TS, column)
        return table

    # -- reads ------------------------------------------------------------------------
    def segments(
        self, stream: str, since: When | None = None, until: When | None = None
    ) -> list[Segment]:
        """The segments of ``stream`` that may hold rows in ``[since, until)``, in append order."""
        _check_stream(stream)
        query = select(_SEGMENTS).where(
            _SEGMENTS.c.project_id == self.project_id, _SEGMENTS.c.stream == stream
        )
        if since is not None:
            query = query.where(_SEGMENTS.c.max_ts >= _epoch_us(since, "since") // 1000)
        if until is not None:
            query = query.where(_SEGMENTS.c.min_ts < -(-_epoch_us(until, "until") // 1000))
        rows = self.db.read(lambda c: c.execute(query.order_by(_SEGMENTS.c.id)).all())
        return [
            Segment(
                id=r.id,
                stream=r.stream,
                min_ts=r.min_ts,
                max_ts=r.max_ts,
                rows=r.rows,
                digest=r.digest,
                size=r.size,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def read(
        self,
        stream: str,
        since: When | None = None,
        until: When | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        schema: pa.Schema | None = None,
    ) -> pa.Table:
        """The rows of ``stream`` with ``since <= ts < until`` (either end open when None),
        ordered by ``ts`` (ties in append order).

        ``where`` keeps rows whose columns equal the given values (``{"endpoint":
        "churn"}``). Segments with different columns are unioned by name (missing
        columns read as null). With no segment in the window the answer is
        ``schema``'s empty table, or one with only ``ts``.
        """
        return self.read_segments(
            self.segments(stream, since, until), since, until, where=where, schema=schema
        )

    def read_segments(
        self,
        segments: list[Segment],
        since: When | None = None,
        until: When | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        schema: pa.Schema | None = None,
    ) -> pa.Table:
        """As ``read``, over the given ``segments`` only (some of what ``segments()``
        answered: a caller reading a window a segment at a time)."""
        import pyarrow as pa

        if not segments:
            return (schema or pa.schema([(TS, pa.timestamp("us", "UTC"))])).empty_table()
        # each distinct file is read once; a segment appended twice with the same bytes
        # is one file with two positions, and the join gives its rows twice
        order = pa.table(
            {
                "_ls_file": [self._local_file(s.digest) for s in segments],
                "_ls_seq": pa.array(range(len(segments)), pa.int64()),
            }
        )
        files = (
            "["
            + ", ".join(_sql_text(p) for p in dict.fromkeys(order["_ls_file"].to_pylist()))
            + "]"
        )
        conditions, params = [], []
        if since is not None:
            conditions.append(f"epoch_us(e.{TS}) >= ?")
            params.append(_epoch_us(since, "since"))
        if until is not None:
            conditions.append(f"epoch_us(e.{TS}) < ?")
            params.append(_epoch_us(until, "until"))
        for column, value in (where or {}).items():
            if not _COLUMN.fullmatch(column):
                raise Invalid(f"expected a column name in 'where'; got {excerpt(column)}")
            if value is None:
                conditions.append(f'e."{column}" IS NULL')
            else:
                conditions.append(f'e."{column}" = ?')
                params.append(value)
        sql = (
            "SELECT e.* EXCLUDE (filename, file_row_number) FROM read_parquet("
            f"{files}, union_by_name = true, filename = true, file_row_number = true) AS e"
            " JOIN segment_order AS o ON e.filename = o._ls_file"
            + (" WHERE " + " AND ".join(conditions) if conditions else "")
            + f" ORDER BY e.{TS}, o._ls_seq, e.file_row_number"
        )
        return self._query(sql, params, order)

    @staticmethod
    def _query(sql: str, params: list[Any], order: pa.Table) -> pa.Table:
        import duckdb

        con = _cursor()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("segment_order", order)
            return con.sql(sql, params=params).to_arrow_table()
        except duckdb.BinderException as exc:
            raise Invalid(f"cannot read the event stream as asked: {exc}") from exc
        except duckdb.IOException as exc:
            raise StoreUnavailable(f"cannot read an event segment: {exc}") from exc
        finally:
            con.close()

    def _local_file(self, digest: str) -> str:
        """A path DuckDB can open: the blob itself if local, else a verified cached copy."""
        local = self.blobs.local_path(digest)
        if local is not None:
            if not local.exists():
                raise NotFound(
                    f"event segment {digest} is indexed but missing from {self.blobs.url}"
                )
            return str(local)
        target = self.cache_dir / digest[:2] / f"{digest}.parquet"
        if not target.exists():
            self.blobs.download(digest, target)
        return str(target)

    @property
    def cache_dir(self) -> Path:
        """Where remote segments are cached (default ``<LOOPSTACK_HOME>/cache/events``)."""
        if self._cache_dir is None:
            from loopstack.config import settings

            self._cache_dir = settings().home / "cache" / "events"
        return self._cache_dir
