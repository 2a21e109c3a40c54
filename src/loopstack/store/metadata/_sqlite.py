"""SQLite backend: WAL, a busy timeout, foreign keys on, writers serialised by BEGIN IMMEDIATE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 5_000

insert = sqlite_insert


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "busy" in text


def create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level: loopstack emits BEGIN itself (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # FULL: a commit that returned survives a power cut, not only a process kill.
        cur.execute("PRAGMA synchronous=FULL")
        # A search sorts or filters every run of an experiment: with SQLite's default
        # 2 MB page cache, 100,000 runs' metrics and params are re-read from the OS on
        # every search. 64 MB of cache and reads through a memory map keep them at hand.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the write lock up front, so two writers never deadlock
        # upgrading shared locks; readers stay deferred and never block writers (WAL).
        # A write waits for other processes' writers only as long as its caller allows
        # (the busy handler sleeps and polls); this process's writers already took turns.
        options = conn.get_execution_options()
        wait_ms = options.get("loopstack_wait_ms", BUSY_TIMEOUT_MS)
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(wait_ms)}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("loopstack_write") else "BEGIN")

    return engine


def lock_for_migration(conn: Any) -> None:
    """BEGIN IMMEDIATE already holds the database's write lock."""


def bulk_insert(
    conn: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows through the driver's executemany (no per-row SQL compilation)."""
    marks = ", ".join(["?"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    conn.exec_driver_sql(sql, rows)
