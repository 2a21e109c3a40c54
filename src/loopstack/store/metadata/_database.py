"""Open a metadata database by URL, migrate it, and run transactions with retry and audit."""

from __future__ import annotations

import gc
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError

from loopstack.errors import Invalid, Overloaded, StoreUnavailable
from loopstack.store.metadata._write_gate import WriteGate

if TYPE_CHECKING:
    from loopstack.store._audit_keys import AuditKeyring

__all__ = ["Database", "open_database", "SCHEMES"]

T = TypeVar("T")
log = logging.getLogger("loopstack.store")

#: URL scheme -> backend module (each provides create, insert, is_busy, lock_for_migration).
SCHEMES: dict[str, str] = {
    "sqlite": "loopstack.store.metadata._sqlite",
    "postgresql": "loopstack.store.metadata._postgresql",
    "postgresql+psycopg": "loopstack.store.metadata._postgresql",
}

_MIGRATIONS = Path(__file__).with_name("migrations")
_RETRY_DEADLINE_S = 30.0


def _backend_for(url: str) -> ModuleType:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in SCHEMES:
        raise Invalid(
            f"the metadata store URL must start with one of {sorted(SCHEMES)}; got {url!r} instead",
            field="db_url",
        )
    return import_module(SCHEMES[scheme])


class Database:
    """One metadata database. Thread-safe; open one per process and share it."""

    def __init__(self, url: str, *, write_wait_s: float | None = None) -> None:
        self.url = url
        #: seconds a write may wait for the write lock before it raises ``Overloaded``
        self.write_wait_s = _RETRY_DEADLINE_S if write_wait_s is None else write_wait_s
        self._gate = WriteGate()
        self._in_write = threading.local()
        self.backend = _backend_for(url)
        self.engine: Engine = self.backend.create(url)
        _every.add(self)
        self.dialect = self.engine.dialect.name
        self.insert = self.backend.insert
        self._audit_keys: AuditKeyring | None = None
        #: (where, every N events) to anchor the audit chain after writes; None: never
        self.audit_anchoring: tuple[str, int] | None = None
        try:
            self._migrate()
        except OperationalError as exc:
            raise StoreUnavailable(
                f"cannot open the metadata store {self.safe_url}: {exc.orig}"
            ) from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def audit_keys(self) -> AuditKeyring:
        """The keys that sign this database's audit chain: those ``open_stores`` gave it,
        else those the environment's settings name (read once, then cached)."""
        if self._audit_keys is None:
            from loopstack.config import settings
            from loopstack.store._audit_keys import keyring_for

            self._audit_keys = keyring_for(settings())
        return self._audit_keys

    @audit_keys.setter
    def audit_keys(self, keys: AuditKeyring) -> None:
        self._audit_keys = keys

    # -- transactions ---------------------------------------------------------------
    def bound_writers(self, *, wait_s: float, max_waiting: int | None) -> None:
        """Make a write that cannot start within ``wait_s`` seconds, or that finds
        ``max_waiting`` writes of this process already queued, raise ``Overloaded`` (503).

        The server calls this: a write waits only so long, well inside a client's
        timeout, and writers never hold more than ``max_waiting`` of its threads.
        """
        self.write_wait_s = wait_s
        self._gate.max_waiting = max_waiting

    @property
    def writers_waiting(self) -> int:
        """How many writes of this process wait for their turn at the write lock now."""
        return self._gate.waiting

    @contextmanager
    def _connect(self, write: bool, wait_s: float | None = None) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            options: dict[str, Any] = {"loopstack_write": write}
            if wait_s is not None:
                options["loopstack_wait_ms"] = max(1, int(wait_s * 1000))
            conn = conn.execution_options(**options)
            with conn.begin():
                yield conn

    def _with_retry(self, fn: Callable[[Connection], T], write: bool) -> T:
        started = time.monotonic()
        if not write:
            return self._attempts(fn, False, started, started + _RETRY_DEADLINE_S)
        if getattr(self._in_write, "active", False):  # a write inside a write: already ours
            return self._attempts(fn, True, started, started + self.write_wait_s)
        if not self._gate.acquire(timeout=self.write_wait_s):
            raise self._busy("write", started, queued=self._gate.waiting)
        self._in_write.active = True
        try:
            return self._attempts(fn, True, started, started + self.write_wait_s)
        finally:
            self._in_write.active = False
            self._gate.release()

    def _attempts(
        self,
        fn: Callable[[Connection], T],
        write: bool,
        started: float,
        deadline: float,
    ) -> T:
        delay = 0.01
        while True:
            left = deadline - time.monotonic()
            try:
                with self._connect(write, wait_s=left if write else None) as conn:
                    return fn(conn)
            except DBAPIError as exc:
                if not self.backend.is_busy(exc):
                    if isinstance(exc, OperationalError) and exc.connection_invalidated:
                        log.warning("lost the metadata store %s: %s", self.safe_url, exc.orig)
                        raise StoreUnavailable("lost the connection to the metadata store") from exc
                    raise
                if time.monotonic() >= deadline:
                    raise self._busy("write" if write else "read", started) from exc
                time.sleep(
                    max(0.0, min(delay * (0.5 + random.random()), deadline - time.monotonic()))
                )
                delay = min(delay * 2, 0.5)

    def _busy(self, what: str, started: float, queued: int | None = None) -> Overloaded:
        """The 503 a caller gets when the store stays busy; the URL goes to the log only."""
        waited = time.monotonic() - started
        if queued is not None and waited < self.write_wait_s:
            reason = f"{queued} writes are already waiting for its write lock"
        else:
            reason = f"a {what} waited {waited:.1f}s for its lock (another writer held it)"
        log.warning("metadata store %s busy: %s", self.safe_url, reason)
        return Overloaded(f"the metadata store stayed busy: {reason}; try again later")

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a read transaction."""
        return self._with_retry(fn, write=False)

    def write_unaudited(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction that appends no audit event.

        Only for high-rate data that the audit chain must not carry: the event log's
        segment index (predictions, feedback, monitoring windows) and a bandit arm's reward
        counters. An event per row or per reward would grow the hash chain by the request
        rate and serialise every write behind the chain's head; the state changes around
        them (creating a deployment or a bandit) go through ``write``. Writers take turns
        and busy stores are retried exactly as in ``write``.
        """
        return self._with_retry(fn, write=True)

    def write(
        self,
        fn: Callable[[Connection], T],
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | Callable[[T], str],
        payload: Any = None,
        project_id: int | None | Callable[[T], int | None] = None,
    ) -> T:
        """Run ``fn(conn)`` and append its audit event (made in ``project_id``, if any) in
        the same transaction.

        Either both land or neither does. Writers of this process take turns
        (``WriteGate``); a busy or locked database is retried with backoff until
        ``write_wait_s`` runs out, then raises ``Overloaded``. With ``audit_anchoring``
        set, an event whose seq is a multiple of its N is then anchored outside the
        database.
        """
        from loopstack.store import audit

        keys = self.audit_keys
        seqs: list[int] = []

        def run(conn: Connection) -> T:
            result = fn(conn)
            oid = object_id(result) if callable(object_id) else object_id
            seqs[:] = [  # a retried transaction starts over
                audit.append(
                    conn,
                    keys=keys,
                    actor=actor,
                    action=action,
                    object_type=object_type,
                    object_id=oid,
                    payload=payload if payload is not None else result,
                    project_id=project_id(result) if callable(project_id) else project_id,
                )
            ]
            return result

        result = self._with_retry(run, write=True)
        if self.audit_anchoring and seqs and seqs[0] % self.audit_anchoring[1] == 0:
            audit.anchor_event(self, seqs[0], to=self.audit_anchoring[0])
        return result

    # -- schema ---------------------------------------------------------------------
    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()

        def current(conn: Connection) -> str | None:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

        with self._connect(write=False) as conn:
            if current(conn) == head:
                return
        with self._connect(write=True) as conn:
            self.backend.lock_for_migration(conn)
            if current(conn) == head:  # another process migrated while we waited
                return
            cfg.attributes["connection"] = conn
            with _ALEMBIC:  # alembic's `context` and `op` are module globals
                command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()

    def _after_fork_in_child(self) -> None:
        """Forget the parent's connections and locks (in a freshly forked child)."""
        # The parent's pooled connections stay referenced, never closed or used here:
        # closing one in the child would end the parent's PostgreSQL session, or make
        # SQLite checkpoint (and drop) a WAL the parent still uses.
        _inherited_pools.append(self.engine.pool)
        self.engine.dispose(close=False)
        # a parent thread may have held the gate when the process forked; it never
        # releases it here
        self._gate = WriteGate(max_waiting=self._gate.max_waiting)
        self._in_write = threading.local()


_open: dict[str, Database] = {}
_opening = threading.Lock()
_ALEMBIC = threading.Lock()
#: every open Database of this process, for the at-fork hook
_every: weakref.WeakSet[Database] = weakref.WeakSet()
#: the pools a forked child inherited (kept alive, so never closed by the child)
_inherited_pools: list[Any] = []


def _after_fork_in_child() -> None:
    """A forked child (a pipeline step's process) opens its own connections: reusing
    the parent's would interleave two processes' traffic on one socket or file handle,
    and a lock a parent thread held at the fork would never be released."""
    global _opening, _ALEMBIC
    # What the child inherited is never garbage-collected here: a parent's unreachable
    # connection finalized in the child would roll back, or close, a handle the parent
    # may still be using (and a closed SQLite file checkpoints and drops its WAL).
    # The child's own garbage is collected as usual.
    gc.freeze()
    _opening = threading.Lock()
    _ALEMBIC = threading.Lock()
    for db in list(_every):
        db._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def open_database(url: str) -> Database:
    """The process-wide ``Database`` for ``url`` (opened, and migrated, on first use)."""
    db = _open.get(url)
    if db is None:
        with _opening:  # two threads opening at once must not migrate twice
            db = _open.get(url)
            if db is None:
                db = _open[url] = Database(url)
    return db
