"""Shared fixtures: an isolated LOOPSTACK_HOME per test, backend URLs, a live server.

Service-backed tests read LOOPSTACK_TEST_PG_URL / LOOPSTACK_TEST_REDIS_URL.
Unset: they skip, saying why. Set but unreachable: they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

PG_ENV = "LOOPSTACK_TEST_PG_URL"
REDIS_ENV = "LOOPSTACK_TEST_REDIS_URL"


#: Modules whose module-scoped fixture is costly (a whole demo run, a Ray instance, a
#: generated benchmark world). Under pytest-xdist (``-n 3`` with ``--dist loadgroup``,
#: see pyproject.toml) each group goes whole to one worker, so the fixture is made once,
#: and the two Ray modules never start two Ray instances at the same time.
_ONE_WORKER = {
    "tests/demo/test_demo.py": "demo",
    "tests/batch/test_ray.py": "ray",
    "tests/pipelines/test_executors_ray.py": "ray",
    "tests/monitoring/test_w4_data.py": "w4-data",
    "tests/monitoring/test_profile_drift.py": "profile-drift",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each module of ``_ONE_WORKER`` on one xdist worker (a no-op without xdist)."""
    for item in items:
        group = _ONE_WORKER.get(item.nodeid.split("::", 1)[0])
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def ls_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """Every test gets its own LOOPSTACK_HOME and no inherited loopstack settings."""
    for key in list(os.environ):
        if key.startswith("LOOPSTACK_") and not key.startswith("LOOPSTACK_TEST_"):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "lshome"
    monkeypatch.setenv("LOOPSTACK_HOME", str(home))
    if not request.node.get_closest_marker("empty_db"):
        _sqlite_from_template(request, monkeypatch)
    from loopstack.config import set_project

    set_project(None)  # nor a project an earlier test chose with ls.set_project
    yield home
    set_project(None)


def _sqlite_from_template(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite store this test opens fresh starts as a copy of one migrated for real once
    per run, instead of running every migration (a quarter of a second per test).

    Only a file that does not exist yet is copied (an existing one migrates as it would);
    the rows the migrations insert get this moment's timestamps, as a migration run now
    would give them; then the real ``_migrate`` runs and finds the schema at head. Tests
    marked ``empty_db`` (the migration tests) are left alone. The PostgreSQL twin is
    ``_pg_schema_ddl``.
    """
    from loopstack.store.metadata import _database

    template = _sqlite_template(request)  # before the patch: the real migrations make it
    real = _database.Database._migrate

    def migrate(db: Any) -> None:
        path = db.engine.url.database if db.dialect == "sqlite" else None
        if path and path != ":memory:" and not db.engine.url.query and not Path(path).exists():
            shutil.copyfile(template, path)
            now = int(time.time() * 1000)
            with sqlite3.connect(path) as conn:
                conn.execute(
                    "UPDATE experiments SET creation_time = ?, last_update_time = ? "
                    "WHERE experiment_id = 0",
                    (now, now),
                )
                conn.execute("UPDATE projects SET created_at = ? WHERE project_id = 0", (now,))
            conn.close()
        real(db)

    monkeypatch.setattr(_database.Database, "_migrate", migrate)


#: the SQLite file the migrations made once for this run
_sqlite_tpl: list[Path] = []


def _sqlite_template(request: pytest.FixtureRequest) -> Path:
    """The migrated template (made on first use, by the real ``Database._migrate``)."""
    if not _sqlite_tpl:
        from loopstack.store.metadata import Database

        factory = request.getfixturevalue("tmp_path_factory")
        path = factory.mktemp("sqlite-template") / "template.db"
        Database(f"sqlite:///{path}").dispose()  # last connection closed: WAL checkpointed
        _sqlite_tpl.append(path)
    return _sqlite_tpl[0]


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set; set it to a PostgreSQL URL to run this test")
    try:
        import psycopg
    except ImportError:
        pytest.fail(f"{PG_ENV} is set but psycopg is not installed (pip install '.[postgres]')")
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(plain, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"{PG_ENV}={url} is set but PostgreSQL is unreachable: {exc}")
    return (
        url
        if url.startswith("postgresql+psycopg://")
        else url.replace("postgresql://", "postgresql+psycopg://", 1)
    )


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    The schema comes already migrated (a copy of one migrated for real once per run, see
    ``_pg_schema_ddl``), so a test does not pay the two seconds of the migrations; a test
    marked ``empty_db`` gets an empty schema (the migration tests).
    """
    import psycopg

    base = _pg_base_url()
    schema = f"ls_test_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    ddl = None if request.node.get_closest_marker("empty_db") else _pg_schema_ddl(base)
    with psycopg.connect(plain, autocommit=True) as conn:
        if ddl is None:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        else:
            conn.execute(ddl.replace(_SCHEMA_MARK, schema))  # type: ignore[call-overload]
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    yield url
    from loopstack.store.metadata import _database

    db = _database._open.pop(url, None)
    if db is not None:
        db.dispose()
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        _dropped[0] += 1
        if _dropped[0] % 50 == 1:
            _vacuum_catalog(conn)


_SCHEMA_MARK = "ls_schema_copy_mark"
#: the DDL of a migrated schema, with ``_SCHEMA_MARK`` for its name (None: no pg_dump)
_pg_ddl: dict[str, str | None] = {}


def _pg_schema_ddl(base: str) -> str | None:
    """The SQL that makes a schema exactly as the migrations leave it.

    Once per run (and per version of the migrations), a schema is migrated for real and
    dumped with pg_dump; each test's schema is that dump under its own name, in one round
    trip (with the rows the migrations insert: the default project, alembic's version).
    Without pg_dump, None: each test migrates its own schema.
    """
    import hashlib
    import shutil

    import psycopg

    if base in _pg_ddl:
        return _pg_ddl[base]
    if shutil.which("pg_dump") is None:
        _pg_ddl[base] = None
        return None
    from loopstack.store.metadata import Database, _database

    migrations = Path(_database.__file__).parent / "migrations" / "versions"
    digest = hashlib.sha256()
    for path in sorted(migrations.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    template = f"ls_tpl_{digest.hexdigest()[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242001)")  # parallel runs build it once
        try:
            found = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (template,)
            ).fetchone()
            if found is None:
                building = f"{template}_building"
                conn.execute(f'DROP SCHEMA IF EXISTS "{building}" CASCADE')
                conn.execute(f'CREATE SCHEMA "{building}"')
                sep = "&" if "?" in base else "?"
                Database(f"{base}{sep}options={quote(f'-csearch_path={building}')}").dispose()
                conn.execute(f'ALTER SCHEMA "{building}" RENAME TO "{template}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242001)")
    dump = subprocess.run(
        ["pg_dump", "--inserts", "--no-owner", "--no-privileges", "-n", template, plain],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # psql meta-commands (pg_dump's \\restrict guard lines) are not SQL
    lines = [line for line in dump.splitlines() if not line.startswith("\\")]
    ddl = "\n".join(lines).replace(template, _SCHEMA_MARK)
    _pg_ddl[base] = ddl
    return ddl


#: schemas dropped by this run (the catalog is vacuumed every 50)
_dropped = [0]
#: the catalog tables a schema's tables leave dead rows in
_CATALOG = ("pg_attribute", "pg_depend", "pg_class", "pg_type", "pg_index", "pg_constraint")


def _vacuum_catalog(conn: Any) -> None:
    """Each test's schema is created and dropped whole: on a server with autovacuum off
    (this machine's) the catalog fills with dead rows and every migration slows down
    (seen: 320k dead pg_attribute rows, the suite twice as slow). A plain VACUUM of those
    tables takes a second and no lock that other sessions notice."""
    for table in _CATALOG:
        conn.execute(f"VACUUM pg_catalog.{table}")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set; set it to a Redis URL to run this test")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(f"{REDIS_ENV}={url} is set but Redis is unreachable: {exc}")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, ls_home: Path) -> str:
    """Each metadata backend in turn: embedded SQLite, then the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{ls_home / 'loopstack.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def use_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the environment (and so ``import loopstack``'s verbs) at ``db_url``."""
    monkeypatch.setenv("LOOPSTACK_DB_URL", db_url)
    return db_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_output(proc: subprocess.Popen) -> str:
    """What a server started by ``start_server`` has printed so far."""
    log = proc.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read().decode(errors="replace")


def start_server(
    env: dict[str, str], *, workers: int = 1, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # a file, not a pipe: nobody reads the access log while the test runs, and a full
    # pipe would block the server
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loopstack.cli",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            *args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{server_output(proc)}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not answer /health within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log.close()  # type: ignore[attr-defined]


@pytest.fixture
def live_server(ls_home: Path) -> Iterator[str]:
    """A real `loopstack server` process on a free port, over this test's LOOPSTACK_HOME."""
    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home)}
    proc, url = start_server(env)
    yield url
    stop_server(proc)


class ThreadedServer:
    """uvicorn serving an app in a background thread of this process (fast to start);
    with ``lifespan="on"`` the app's startup and shutdown run too (a gRPC server, say)."""

    def __init__(self, app: object, lifespan: str = "off") -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "rest"])
def tracking_backend(
    request: pytest.FixtureRequest, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The tracking API against SQLite, PostgreSQL, and a server over HTTP (native REST)."""
    if request.param == "postgresql":
        monkeypatch.setenv("LOOPSTACK_DB_URL", request.getfixturevalue("pg_url"))
        yield request.param
        return
    monkeypatch.setenv("LOOPSTACK_DB_URL", f"sqlite:///{ls_home / 'loopstack.db'}")
    if request.param == "sqlite":
        yield request.param
        return
    from loopstack.server import create_app

    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        yield request.param
        from loopstack.store.remote import close_shared

        close_shared(server.url)


class DomainBackend(str):
    """The backend's name (``sqlite``, ``server-postgresql``, ...) and its database URL."""

    db_url: str


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "server-sqlite",
        pytest.param("server-postgresql", marks=pytest.mark.postgres),
    ]
)
def domain_backend(
    request: pytest.FixtureRequest, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DomainBackend]:
    """A domain API (datasets, features) against SQLite, PostgreSQL, and a live server over
    each (the client then sets only LOOPSTACK_TRACKING_URI=server.url)."""
    kind = DomainBackend(request.param)
    db = kind.db_url = (
        request.getfixturevalue("pg_url")
        if kind.endswith("postgresql")
        else f"sqlite:///{ls_home / 'loopstack.db'}"
    )
    monkeypatch.setenv("LOOPSTACK_DB_URL", db)
    if not kind.startswith("server"):
        yield kind
        return
    from loopstack.server import create_app

    with ThreadedServer(create_app()) as server:
        monkeypatch.delenv("LOOPSTACK_DB_URL")
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        yield kind
        from loopstack.store.remote import close_shared

        close_shared(server.url)


@pytest.fixture
def viewer_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, str]]:
    """A live server with LOOPSTACK_AUTH=on: (url, the admin's token, a viewer's token);
    the client's LOOPSTACK_TRACKING_URI points at it."""
    from loopstack import auth
    from loopstack.server import create_app
    from loopstack.store import open_stores
    from loopstack.store.remote import close_shared

    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    db = open_stores().db
    root = auth.create_token(db, name="root", user="root")[0]
    auth.create_user(db, "vic", actor="root")
    auth.add_member(db, "default", "vic", "viewer", actor="root")
    viewer = auth.create_token(db, name="vic", user="vic", actor="root")[0]
    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        yield server.url, root, viewer
        close_shared(server.url)
