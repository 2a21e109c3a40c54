"""Migrations upgrade an existing store in place, keeping every row, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from loopstack.store import audit
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema import Base

MIGRATIONS = (
    Path(__import__("loopstack.store.metadata", fromlist=["x"]).__file__).parent / "migrations"
)


def _upgrade(url: str, revision: str) -> None:
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


@pytest.mark.empty_db
def test_upgrade_from_the_first_revision_keeps_runs(db_url: str, ls_home: Path) -> None:
    ls_home.mkdir(parents=True, exist_ok=True)
    _upgrade(db_url, "0001")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, experiment_id, name, status, start_time,"
                " lifecycle_stage, artifact_uri, user_id)"
                " VALUES ('r1', 0, 'old', 'FINISHED', 1, 'active', 'x', 'u')"
            )
        )
        conn.execute(text("INSERT INTO params (run_id, key, value) VALUES ('r1', 'lr', '0.1')"))
    engine.dispose()
    db = Database(db_url)  # opening migrates to head
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM runs")).scalar() == "old"
            assert conn.execute(text("SELECT value FROM params")).scalar() == "0.1"
            assert conn.execute(text("SELECT project_id FROM experiments")).scalar() == 0
            assert conn.execute(text("SELECT name FROM projects")).scalar() == "default"
            tables = set(inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert audit.verify(db).ok
    finally:
        db.dispose()


def test_experiment_names_are_unique_per_project(use_db: str) -> None:
    import pytest

    from loopstack import auth
    from loopstack.errors import AlreadyExists
    from loopstack.store import open_stores
    from loopstack.tracking._sql_store import SqlTrackingStore

    stores = open_stores()
    lab = auth.create_project(stores.db, "lab", actor="t").project_id
    default, other = (
        SqlTrackingStore(stores, project_id=0),
        SqlTrackingStore(stores, project_id=lab),
    )
    a, b = default.create_experiment("churn"), other.create_experiment("churn")
    assert a != b
    assert default.get_experiment_by_name("churn").experiment_id == a  # type: ignore[union-attr]
    assert other.get_experiment_by_name("churn").experiment_id == b  # type: ignore[union-attr]
    with pytest.raises(AlreadyExists):
        other.create_experiment("churn")


@pytest.mark.empty_db  # fresh files: each thread runs the real migrations
def test_threads_opening_different_stores_at_once_each_migrate(tmp_path: Path) -> None:
    """Alembic keeps its migration context in module globals: two threads migrating two
    fresh stores at the same moment used to tear each other's context down."""
    import threading

    from loopstack.store.metadata import open_database

    urls = [f"sqlite:///{tmp_path}/s{i}.db" for i in range(6)]
    start, errors = threading.Barrier(len(urls)), []

    def open_one(url: str) -> None:
        start.wait()
        try:
            open_database(url)
        except Exception as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for url in urls:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
        engine.dispose()


def test_migrations_create_every_table_the_schema_declares(use_db: str) -> None:
    """The migrations and the declared schema agree, table by table and index by index."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from loopstack.store import open_stores

    db = open_stores().db
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
