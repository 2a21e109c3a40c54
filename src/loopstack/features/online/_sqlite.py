"""Embedded online store: one SQLite file in WAL mode, one WITHOUT ROWID table.

Rows are keyed by (view, entity key); a read of any number of entities is one
statement (the keys travel as one JSON array through ``json_each``), and a
materialization is one transaction, so a failure leaves the previous rows. Each batch
is written in key order (a stable sort, so a key repeated in a batch keeps its last
row): B-tree inserts then append to the same pages instead of touching random ones,
about three times faster for 100k rows.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from loopstack.errors import Invalid, Overloaded
from loopstack.features.online._base import OnlineBatch, OnlineStore, ViewStats
from loopstack.features.online._rows import _dumps

__all__ = ["SqliteOnlineStore"]

log = logging.getLogger("loopstack.features")
_BUSY_TIMEOUT_S = 30.0
_MMAP_BYTES = 256 << 20

_DDL = (
    "CREATE TABLE IF NOT EXISTS online_rows ("
    " view TEXT NOT NULL, entity_key TEXT NOT NULL, event_ts INTEGER NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY (view, entity_key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS online_views ("
    " view TEXT PRIMARY KEY, watermark INTEGER, updated_at INTEGER NOT NULL) WITHOUT ROWID",
)
# Late data: the stored row survives when it is strictly newer than the incoming one.
_UPSERT = (
    "INSERT INTO online_rows (view, entity_key, event_ts, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (view, entity_key) DO UPDATE SET event_ts = excluded.event_ts, "
    "value = excluded.value WHERE excluded.event_ts >= online_rows.event_ts"
)
_READ_ONE = "SELECT event_ts, value FROM online_rows WHERE view = ? AND entity_key = ?"
# IN (json_each) makes SQLite probe the primary key once per key (a JOIN may scan the view)
_READ_MANY = (
    "SELECT entity_key, event_ts, value FROM online_rows "
    "WHERE view = ? AND entity_key IN (SELECT value FROM json_each(?))"
)


def _path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise Invalid(
            f"a SQLite online store URL looks like sqlite:///path/online.db; got {url!r} instead",
            field="online_url",
        )
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return path


class SqliteOnlineStore(OnlineStore):
    schemes = ("sqlite",)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = _path(url)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        conn = self._conn()
        for ddl in _DDL:
            conn.execute(ddl)

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread: readers run in parallel under WAL.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # reads probe random pages: mapped, they skip a read() and a copy per page
            # (100-entity reads of 100k rows: 0.6 -> 0.43 ms); address space, not memory
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def write(
        self, view: str, batches: Iterable[OnlineBatch], *, watermark: int | None = None
    ) -> int:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # the file's path goes to the log, not into an answer a client may see
            log.warning("the online store %s stayed locked: %s", self.path, exc)
            raise Overloaded(
                f"the online store stayed locked by another writer for {_BUSY_TIMEOUT_S:.0f}s;"
                " try again later"
            ) from exc
        try:
            before = conn.total_changes
            for batch in batches:
                keys, ts, values = batch.keys, batch.event_ts, batch.values
                if not len(keys) == len(ts) == len(values):
                    raise ValueError("an online batch needs as many event times and values as keys")
                order = sorted(range(len(keys)), key=keys.__getitem__)  # stable
                conn.executemany(_UPSERT, ((view, keys[i], ts[i], values[i]) for i in order))
            kept = conn.total_changes - before
            conn.execute(
                "INSERT INTO online_views (view, watermark, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (view) DO UPDATE SET updated_at = excluded.updated_at, "
                "watermark = coalesce(excluded.watermark, online_views.watermark)",
                (view, watermark, int(time.time() * 1e6)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return kept

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str | bytes] | None]:
        conn = self._conn()
        if len(keys) == 1:
            row = conn.execute(_READ_ONE, (view, keys[0])).fetchone()
            return [row]
        found = {k: (ts, v) for k, ts, v in conn.execute(_READ_MANY, (view, _dumps(list(keys))))}
        return [found.get(k) for k in keys]

    def scan(self, view: str) -> Iterator[tuple[str, int, str | bytes]]:
        cur = self._conn().execute(
            "SELECT entity_key, event_ts, value FROM online_rows WHERE view = ?", (view,)
        )
        while chunk := cur.fetchmany(10_000):
            yield from chunk

    def stats(self, view: str) -> ViewStats:
        conn = self._conn()
        rows, newest = conn.execute(
            "SELECT count(*), max(event_ts) FROM online_rows WHERE view = ?", (view,)
        ).fetchone()
        mark = conn.execute("SELECT watermark FROM online_views WHERE view = ?", (view,)).fetchone()
        return ViewStats(rows=rows, newest_event_ts=newest, watermark=mark[0] if mark else None)

    def delete_view(self, view: str) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM online_rows WHERE view = ?", (view,))
            conn.execute("DELETE FROM online_views WHERE view = ?", (view,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def views(self) -> list[str]:
        rows = (
            self._conn()
            .execute(
                "SELECT view FROM online_views UNION SELECT DISTINCT view FROM online_rows "
                "ORDER BY 1"
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
