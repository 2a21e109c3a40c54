"""Fixtures for the auth tests: a migrated metadata database on each backend."""

from __future__ import annotations

from typing import Any

import pytest

from loopstack.store.metadata import Database, open_database


@pytest.fixture
def db(db_url: str) -> Database:
    return open_database(db_url)


def snapshot(db: Database) -> dict[str, Any]:
    """Everything auth writes, plus the audit log's length: equal snapshots, nothing changed."""
    from sqlalchemy import text

    from loopstack.store import audit

    def run(conn: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for table in ("users", "projects", "project_members", "tokens"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            out[table] = sorted(tuple(str(v) for v in r) for r in rows)
        return out

    state = db.read(run)
    state["audit"] = len(audit.events(db, limit=1_000_000))
    return state
