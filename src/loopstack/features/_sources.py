"""Where a feature view's rows come from: Parquet files, a SQL query, or a DataFrame.

Every source reads through DuckDB, so Parquet is scanned column by column and never
materialised in pandas. ``read`` returns a ``pyarrow.Table`` whose event timestamp
column is UTC (naive timestamps in a source are taken to be UTC).
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid, NotFound

__all__ = [
    "DataFrameSource",
    "FileSource",
    "Source",
    "SqlSource",
    "as_source",
    "duckdb_connect",
    "frame_to_arrow",
    "source_from_dict",
    "to_utc",
]

#: a column every source can add: the order rows were written in (ties on equal timestamps)
ORDER_COLUMN = "__ls_order"


_local = threading.local()


#: every thread's DuckDB database, by (pid, thread ident): held here, not only in the
#: thread-local, because a process forked from another thread frees the other threads'
#: locals, and a DuckDB database freed in a forked child crashes it (its threads and
#: locks stayed in the parent)
_databases: dict[tuple[int, int], tuple[threading.Thread, Any]] = {}
_databases_lock = threading.Lock()


def duckdb_connect() -> Any:
    """A DuckDB cursor that compares and prints timestamps in UTC.

    One in-memory database per thread is kept: opening one costs tens of milliseconds,
    a cursor on it almost nothing. Close the cursor when done (its views go with it).
    """
    import duckdb

    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = duckdb.connect()
        db.execute("SET TimeZone='UTC'")
        pid = os.getpid()
        with _databases_lock:
            for key, (thread, _) in list(_databases.items()):
                if key[0] == pid and not thread.is_alive():  # never a parent's, in a child
                    del _databases[key]
            _databases[(pid, threading.get_ident())] = (threading.current_thread(), db)
    con = db.cursor()
    con.execute("SET TimeZone='UTC'")
    return con


def to_utc(value: Any, what: str = "timestamp") -> datetime:
    """``value`` (datetime, pandas Timestamp, ISO string) as a naive UTC datetime."""
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"the {what} must be a datetime or an ISO-8601 string; got {value!r}", field=what
        ) from exc
    if ts is pd.NaT:
        raise Invalid(f"the {what} must be a datetime; got {value!r}", field=what)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Source(abc.ABC):
    """A table of feature rows with an event timestamp column."""

    kind: str = ""

    def __init__(self, timestamp_field: str | None = None) -> None:
        if timestamp_field is not None and (
            not isinstance(timestamp_field, str) or not timestamp_field
        ):
            raise Invalid(
                f"timestamp_field must be a column name; got {timestamp_field!r}",
                field="timestamp_field",
            )
        self.timestamp_field = timestamp_field

    # -- what each backend provides ---------------------------------------------------
    @abc.abstractmethod
    def relation_sql(self, con: Any, *, with_order: bool = False) -> str:
        """A DuckDB FROM-clause expression over the rows, registering what it needs in ``con``.

        With ``with_order`` the rows carry ``__ls_order``: a number that grows with the
        order rows were written in (file, then row), which breaks ties on equal timestamps.
        """

    @abc.abstractmethod
    def _spec(self) -> dict[str, Any]:
        """The JSON-able fields that identify this source."""

    def check_readable(self) -> None:  # noqa: B027 - most sources are always readable
        """NotFound (saying why) when the rows cannot be read from this process."""

    # -- shared -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._spec(), "timestamp_field": self.timestamp_field}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def with_timestamp_field(self, field: str) -> Source:
        """This source, with ``field`` as its event timestamp column if it names none."""
        if self.timestamp_field is not None:
            return self
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.timestamp_field = field
        return clone

    def schema(self) -> Any:
        """The ``pyarrow.Schema`` of the rows, as stored."""
        self.check_readable()
        con = duckdb_connect()
        try:
            return (
                con.sql(f"SELECT * FROM {self.relation_sql(con)} LIMIT 0").to_arrow_table().schema
            )
        finally:
            con.close()

    def read(self, columns: list[str] | None = None, start: Any = None, end: Any = None) -> Any:
        """The rows as a ``pyarrow.Table``: ``columns`` (all by default), event time in
        ``[start, end]`` (both inclusive, as Feast's materialisation reads), UTC timestamps.
        """
        self.check_readable()
        ts = self.timestamp_field
        if (start is not None or end is not None) and ts is None:
            raise Invalid(
                "this source has no timestamp_field, so it cannot be read by time "
                "range; give FileSource(..., timestamp_field=...) or use it in a "
                "FeatureView",
                field="timestamp_field",
            )
        con = duckdb_connect()
        try:
            rel = self.relation_sql(con)
            available = [
                f.name for f in con.sql(f"SELECT * FROM {rel} LIMIT 0").to_arrow_table().schema
            ]
            wanted = list(columns) if columns is not None else available
            missing = [c for c in wanted if c not in available]
            if missing:
                raise NotFound(
                    f"the source {self.describe()} has no column "
                    f"{', '.join(map(repr, missing))}; it has {', '.join(available)}"
                )
            select = []
            for c in wanted:
                if c == ts:
                    select.append(f"CAST({_quote(c)} AS TIMESTAMPTZ) AS {_quote(c)}")
                else:
                    select.append(_quote(c))
            where = []
            if start is not None:
                where.append(
                    f"{_quote(str(ts))} >= {_literal(str(to_utc(start, 'start')))}::TIMESTAMP"
                )
            if end is not None:
                where.append(f"{_quote(str(ts))} <= {_literal(str(to_utc(end, 'end')))}::TIMESTAMP")
            sql = f"SELECT {', '.join(select) or '*'} FROM {rel}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def describe(self) -> str:
        return f"{self.kind} source"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Source) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.digest)


class FileSource(Source):
    """A Parquet file, or a directory of Parquet files (read in file-name order).

    >>> FileSource("data/driver_stats.parquet", timestamp_field="event_timestamp")
    """

    kind = "file"

    def __init__(self, path: str | Path, timestamp_field: str | None = None) -> None:
        super().__init__(timestamp_field)
        if not isinstance(path, str | Path) or not str(path):
            raise Invalid(f"a FileSource needs a path; got {path!r}", field="path")
        text = str(path)
        self.path = text if "://" in text else str(Path(text).expanduser().resolve())

    def _spec(self) -> dict[str, Any]:
        return {"path": self.path}

    def describe(self) -> str:
        return repr(self.path)

    def _is_local(self) -> bool:
        return "://" not in self.path or self.path.startswith("file://")

    def _local(self) -> Path:
        return Path(self.path.removeprefix("file://"))

    def check_readable(self) -> None:
        if self._is_local():
            p = self._local()
            if not p.exists():
                raise NotFound(f"the feature source file {str(p)!r} does not exist")
            if p.is_dir() and not self._files():
                raise NotFound(f"the feature source directory {str(p)!r} holds no .parquet file")

    def _files(self) -> list[str]:
        p = self._local()
        return sorted(str(f) for f in p.rglob("*.parquet") if f.is_file())

    def relation_sql(self, con: Any, *, with_order: bool = False) -> str:
        if self._is_local() and self._local().is_dir():
            files = self._files()
            listing = "[" + ", ".join(_literal(f) for f in files) + "]"
            if not with_order:
                return f"read_parquet({listing}, union_by_name=true)"
            # later files, then later rows, were written later: number rows across files
            import pyarrow.parquet as pq

            offsets, total = [], 0
            for f in files:
                offsets.append(total)
                total += pq.read_metadata(f).num_rows
            starts = "[" + ", ".join(map(str, offsets)) + "]"
            return (
                f"(SELECT * EXCLUDE (filename, file_row_number), "
                f"CAST({starts}[list_position({listing}, filename)] AS BIGINT) "
                f"+ file_row_number AS {ORDER_COLUMN} FROM read_parquet({listing}, "
                f"union_by_name=true, filename=true, file_row_number=true))"
            )
        path = _literal(str(self._local()) if self._is_local() else self.path)
        if not with_order:
            return f"read_parquet({path})"
        return (
            f"(SELECT * EXCLUDE (file_row_number), file_row_number AS {ORDER_COLUMN} "
            f"FROM read_parquet({path}, file_row_number=true))"
        )


class SqlSource(Source):
    """The rows a SQL query returns from a database named by a SQLAlchemy URL.

    >>> SqlSource("postgresql+psycopg://db/dw", "SELECT * FROM driver_stats")
    """

    kind = "sql"

    def __init__(self, url: str, query: str, timestamp_field: str | None = None) -> None:
        super().__init__(timestamp_field)
        if not isinstance(url, str) or "://" not in url:
            raise Invalid(f"a SqlSource needs a SQLAlchemy URL; got {url!r}", field="url")
        if not isinstance(query, str) or not query.strip():
            raise Invalid(f"a SqlSource needs a query; got {query!r}", field="query")
        self.url, self.query = url, query

    def _spec(self) -> dict[str, Any]:
        from sqlalchemy.engine import make_url

        return {"url": make_url(self.url).render_as_string(hide_password=True), "query": self.query}

    def describe(self) -> str:
        return f"{self._spec()['url']} query {self.query[:60]!r}"

    def fetch(self) -> Any:
        """The query's rows as a ``pyarrow.Table``."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = create_engine(self.url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise Invalid(f"cannot open the SqlSource URL: {exc}", field="url") from exc
        try:
            with engine.connect() as conn:
                result = conn.execute(text(self.query))
                names = list(result.keys())
                rows = result.fetchall()
        except SQLAlchemyError as exc:
            raise NotFound(
                f"the SqlSource query failed ({self.describe()}): {getattr(exc, 'orig', exc)}"
            ) from exc
        finally:
            engine.dispose()
        import pandas as pd

        return frame_to_arrow(pd.DataFrame.from_records(rows, columns=names))

    def relation_sql(self, con: Any, *, with_order: bool = False) -> str:
        return _register_arrow(con, self.fetch(), with_order)


class DataFrameSource(Source):
    """Rows held in memory (a pandas DataFrame or a pyarrow Table).

    Such a definition is stored as its content digest and ``"in-memory"``: another
    process (``loopstack features ...``, a server) cannot read it back.
    """

    kind = "dataframe"

    def __init__(self, df: Any, timestamp_field: str | None = None) -> None:
        super().__init__(timestamp_field)
        import pyarrow as pa

        if isinstance(df, pa.Table):
            table = df
        elif hasattr(df, "to_arrow") and not hasattr(df, "iloc"):
            table = df.to_arrow()
        else:
            import pandas as pd

            if not isinstance(df, pd.DataFrame):
                raise Invalid(
                    "a DataFrameSource needs a pandas DataFrame or a pyarrow Table; "
                    f"got {type(df).__name__} instead",
                    field="df",
                )
            table = frame_to_arrow(df)
        self.table: Any = table
        self._digest: str | None = None

    @property
    def content_digest(self) -> str:
        if self._digest is None:
            import pyarrow as pa

            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, self.table.schema) as writer:
                writer.write_table(self.table)
            self._digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
        return self._digest

    def _spec(self) -> dict[str, Any]:
        return {
            "location": "in-memory",
            "content_digest": self.content_digest,
            "num_rows": self.table.num_rows,
        }

    def describe(self) -> str:
        return f"in-memory DataFrame {self.content_digest[:12]}"

    def relation_sql(self, con: Any, *, with_order: bool = False) -> str:
        return _register_arrow(con, self.table, with_order)


class _UnreadableSource(Source):
    """A stored in-memory source read back by a process that does not hold its rows."""

    kind = "dataframe"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec.get("timestamp_field"))
        self.spec = {k: v for k, v in spec.items() if k not in ("kind", "timestamp_field")}

    def _spec(self) -> dict[str, Any]:
        return dict(self.spec)

    def describe(self) -> str:
        return f"in-memory DataFrame {str(self.spec.get('content_digest', ''))[:12]}"

    def check_readable(self) -> None:
        raise NotFound(
            f"this feature view's source is an {self.describe()} that lived in the process "
            "that applied it; another process cannot read it. Apply the definition again "
            "from this process with the DataFrame, or use a FileSource or SqlSource"
        )

    def relation_sql(self, con: Any, *, with_order: bool = False) -> str:
        self.check_readable()
        raise AssertionError("unreachable")


def frame_to_arrow(df: Any) -> Any:
    """A pandas DataFrame as a pyarrow Table (no index)."""
    import warnings

    import pyarrow as pa

    with warnings.catch_warnings():
        # pyarrow reads tz-aware columns through Series.values, which pandas 3 deprecates
        warnings.filterwarnings("ignore", message=".*DatetimeTZDtype is deprecated.*")
        return pa.Table.from_pandas(df, preserve_index=False)


_counter = [0]


def _register_arrow(con: Any, table: Any, with_order: bool) -> str:
    import numpy as np
    import pyarrow as pa

    if with_order:
        table = table.append_column(
            ORDER_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64))
        )
    _counter[0] += 1
    name = f"__ls_src_{_counter[0]}"
    con.register(name, table)
    return name


def as_source(obj: Any, timestamp_field: str | None = None) -> Source:
    """A ``Source`` for a source, a path (Parquet) or a DataFrame / Arrow table."""
    if isinstance(obj, Source):
        return obj.with_timestamp_field(timestamp_field) if timestamp_field else obj
    if isinstance(obj, str | Path):
        return FileSource(obj, timestamp_field)
    if type(obj).__name__ in ("DataFrame", "Table"):
        return DataFrameSource(obj, timestamp_field)
    raise Invalid(
        "a feature view's source must be a FileSource, SqlSource, DataFrameSource, a "
        f"Parquet path or a DataFrame; got {type(obj).__name__} instead",
        field="source",
    )


def source_from_dict(spec: dict[str, Any]) -> Source:
    kind = spec.get("kind")
    ts = spec.get("timestamp_field")
    if kind == "file":
        return FileSource(spec["path"], ts)
    if kind == "sql":
        return SqlSource(spec["url"], spec["query"], ts)
    if kind == "dataframe":
        return _UnreadableSource(spec)
    raise Invalid(f"unknown source kind {kind!r}; expected file, sql or dataframe", field="source")
