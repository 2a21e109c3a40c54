"""PostgreSQL backend through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

insert = pg_insert

_MIGRATION_LOCK_KEY = 0x100B57AC  # any constant shared by every loopstack process


def is_busy(exc: BaseException) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    # serialization_failure, deadlock_detected, lock_not_available
    return code in {"40001", "40P01", "55P03"}


def create(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write waits for row locks (the audit head) only as long as its caller allows;
        # past that PostgreSQL raises lock_not_available, which is_busy counts as busy.
        wait_ms = conn.get_execution_options().get("loopstack_wait_ms")
        if wait_ms is not None:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait_ms)}")

    return engine


def lock_for_migration(conn: Any) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})


def bulk_insert(
    conn: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows through the driver's executemany (no per-row SQL compilation)."""
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    conn.exec_driver_sql(sql, rows)
