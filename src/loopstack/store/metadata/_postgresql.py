"""PostgreSQL backend through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

insert = pg_insert

_MIGRATION_LOCK_KEY = 0x100B57AC  # any constant shared by every loopstack process


def is_busy(exc: BaseException) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    # serialization_failure, deadlock_detected, lock_not_available
    return code in {"40001", "40P01", "55P03"}


def create(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def lock_for_migration(conn: Any) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})


def bulk_insert(
    conn: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows through the driver's executemany (no per-row SQL compilation)."""
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    conn.exec_driver_sql(sql, rows)
