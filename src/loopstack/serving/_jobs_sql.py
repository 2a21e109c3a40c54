"""The job queue in the metadata database (``inference_jobs``).

A claim is one write transaction: pick the oldest claimable row and take it. On
PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP LOCKED`` (concurrent claimers skip
each other's rows instead of waiting); on SQLite the transaction starts with ``BEGIN
IMMEDIATE`` (the database's write lock), so the pick and the update are one atomic step
among every process. Either way the update is also conditional on the row still being
claimable, so no two workers ever hold one job.
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from loopstack.errors import NotFound
from loopstack.serving.jobs import (
    DEFAULT_MAX_TRIES,
    Job,
    check_enqueue,
    check_lease,
    new_job_id,
    now_ms,
)
from loopstack.store.metadata import Database
from loopstack.store.metadata.schema_jobs import InferenceJobRow

__all__ = ["SqlJobQueue"]

_J = cast(Table, InferenceJobRow.__table__)


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def job_from_row(row: Any) -> Job:
    """A ``Job`` from an ``inference_jobs`` row."""
    return Job(
        job_id=row.job_id,
        endpoint=row.endpoint,
        status=row.status,
        payload=json.loads(row.payload),
        tries=row.tries,
        max_tries=row.max_tries,
        created_at=row.created_at / 1000,
        idempotency_key=row.idempotency_key,
        callback_url=row.callback_url,
        holder=row.holder,
        lease_expires_at=_s(row.lease_expires_at),
        started_at=_s(row.started_at),
        finished_at=_s(row.finished_at),
        expires_at=_s(row.expires_at),
        result=None if row.result is None else json.loads(row.result),
        error=row.error,
        callback=None if row.callback is None else json.loads(row.callback),
    )


class SqlJobQueue:
    """``JobQueue`` over the metadata database ``db`` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, *, result_ttl_s: float) -> None:
        self.db = db
        self.result_ttl_s = result_ttl_s

    def _ttl_ms(self) -> int:
        return int(round(self.result_ttl_s * 1000))

    def enqueue(
        self,
        endpoint: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        max_tries: int = DEFAULT_MAX_TRIES,
        now: float | None = None,
    ) -> Job:
        """Store a queued job (or return the one already under ``idempotency_key``)."""
        body = check_enqueue(endpoint, payload, idempotency_key, callback_url, max_tries)
        at = now_ms(now)
        row = {
            "job_id": new_job_id(),
            "endpoint": endpoint,
            "status": "queued",
            "payload": body,
            "idempotency_key": idempotency_key,
            "callback_url": callback_url,
            "tries": 0,
            "max_tries": max_tries,
            "created_at": at,
        }

        def put(conn: Connection) -> Any:
            if idempotency_key is not None:
                known = conn.execute(
                    select(_J).where(
                        _J.c.endpoint == endpoint, _J.c.idempotency_key == idempotency_key
                    )
                ).first()
                if known is not None:
                    return known
            try:
                with conn.begin_nested():
                    conn.execute(insert(_J).values(**row))
            except IntegrityError:  # the same key, enqueued by another process just now
                return conn.execute(
                    select(_J).where(
                        _J.c.endpoint == endpoint, _J.c.idempotency_key == idempotency_key
                    )
                ).first()
            return conn.execute(select(_J).where(_J.c.job_id == row["job_id"])).first()

        return job_from_row(self.db.write_unaudited(put))

    def claim(
        self,
        worker: str,
        lease_s: float,
        *,
        endpoints: list[str] | None = None,
        now: float | None = None,
    ) -> Job | None:
        """The oldest claimable job (of ``endpoints``, if given), now held by ``worker``."""
        lease_ms = check_lease(lease_s)
        at = now_ms(now)
        lapsed = and_(_J.c.status == "running", _J.c.lease_expires_at <= at)
        claimable = or_(_J.c.status == "queued", lapsed)
        scope = [] if endpoints is None else [_J.c.endpoint.in_(endpoints)]

        def take(conn: Connection) -> Any:
            # a job whose worker died after its last try: failed, not retried
            conn.execute(
                update(_J)
                .where(lapsed, _J.c.tries >= _J.c.max_tries, *scope)
                .values(
                    status="failed",
                    holder=None,
                    finished_at=at,
                    expires_at=at + self._ttl_ms(),
                    error="its worker stopped before finishing (lease expired) on the last try",
                )
            )
            while True:
                pick = (
                    select(_J.c.job_id)
                    .where(claimable, *scope)
                    .order_by(_J.c.created_at, _J.c.job_id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                job_id = conn.execute(pick).scalar()
                if job_id is None:
                    return None
                taken = conn.execute(
                    update(_J)
                    .where(_J.c.job_id == job_id, claimable)
                    .values(
                        status="running",
                        holder=worker,
                        lease_expires_at=at + lease_ms,
                        started_at=at,
                        tries=_J.c.tries + 1,
                    )
                ).rowcount
                if taken:
                    return conn.execute(select(_J).where(_J.c.job_id == job_id)).first()

        row = self.db.write_unaudited(take)
        return None if row is None else job_from_row(row)

    def _held(self, job_id: str, worker: str) -> Any:
        return and_(_J.c.job_id == job_id, _J.c.holder == worker, _J.c.status == "running")

    def heartbeat(
        self, job_id: str, worker: str, lease_s: float, *, now: float | None = None
    ) -> bool:
        """Renew ``worker``'s lease on the job; False when it no longer holds it."""
        until = now_ms(now) + check_lease(lease_s)
        held = self._held(job_id, worker)
        return bool(
            self.db.write_unaudited(
                lambda conn: (
                    conn.execute(update(_J).where(held).values(lease_expires_at=until)).rowcount
                )
            )
        )

    def complete(
        self, job_id: str, worker: str, result: dict[str, Any], *, now: float | None = None
    ) -> bool:
        """Mark the job succeeded with ``result``, if ``worker`` holds it; whether it did."""
        at = now_ms(now)
        body = json.dumps(result, separators=(",", ":"))
        held = self._held(job_id, worker)
        values = {
            "status": "succeeded",
            "result": body,
            "error": None,
            "holder": None,
            "lease_expires_at": None,
            "finished_at": at,
            "expires_at": at + self._ttl_ms(),
        }
        return bool(
            self.db.write_unaudited(
                lambda conn: conn.execute(update(_J).where(held).values(**values)).rowcount
            )
        )

    def fail(
        self, job_id: str, worker: str, error: str, *, retry: bool = True, now: float | None = None
    ) -> Job | None:
        """Record a try's ``error``: requeued while tries are left (and ``retry``), else
        failed; None when ``worker`` no longer holds the job."""
        at = now_ms(now)
        held = self._held(job_id, worker)

        def record(conn: Connection) -> Any:
            row = conn.execute(select(_J).where(held)).first()
            if row is None:
                return None
            if retry and row.tries < row.max_tries:
                values: dict[str, Any] = {"status": "queued", "holder": None, "error": error}
            else:
                values = {
                    "status": "failed",
                    "holder": None,
                    "error": error,
                    "finished_at": at,
                    "expires_at": at + self._ttl_ms(),
                }
            values["lease_expires_at"] = None
            if not conn.execute(update(_J).where(held).values(**values)).rowcount:
                return None
            return conn.execute(select(_J).where(_J.c.job_id == job_id)).first()

        row = self.db.write_unaudited(record)
        return None if row is None else job_from_row(row)

    def note_callback(self, job_id: str, outcome: dict[str, Any]) -> None:
        """Record what delivering the job's callback did (never changes its status)."""
        body = json.dumps(outcome, separators=(",", ":"))
        self.db.write_unaudited(
            lambda conn: conn.execute(update(_J).where(_J.c.job_id == job_id).values(callback=body))
        )

    def get(self, job_id: str, *, now: float | None = None) -> Job:
        """The job; ``NotFound`` for an unknown or expired one."""
        at = now_ms(now)
        row = self.db.read(
            lambda conn: conn.execute(select(_J).where(_J.c.job_id == job_id)).first()
        )
        if row is None or (row.expires_at is not None and row.expires_at <= at):
            raise NotFound(f"no job {job_id!r} (unknown, or its result expired)")
        return job_from_row(row)

    def expire(self, *, now: float | None = None) -> int:
        """Remove the finished jobs whose TTL ran out; how many."""
        at = now_ms(now)
        return int(
            self.db.write_unaudited(
                lambda conn: (
                    conn.execute(
                        delete(_J).where(_J.c.expires_at.is_not(None), _J.c.expires_at <= at)
                    ).rowcount
                )
            )
        )
