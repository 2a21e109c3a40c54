"""A durable queue of async inference jobs: one interface, two backends.

``open_queue("sql", db=...)`` keeps the jobs in the metadata database (the
``inference_jobs`` table); ``open_queue("redis://host:6379/0")`` keeps them in Redis.
Both give the same semantics, which one contract suite checks:

- ``enqueue`` stores a job (``queued``) and returns it at once; with an idempotency key
  a second enqueue of the same key on the same endpoint returns the first job.
- ``claim`` hands the oldest claimable job to one worker under a lease (``running``,
  ``tries`` + 1). A job is claimable when queued, or when running under a lease that
  expired (its worker died): it is retried, unless it already had ``max_tries`` tries,
  then it is ``failed`` with the reason. Two claimers never get the same job.
- ``heartbeat`` renews the lease; ``complete`` and ``fail`` take effect only for the
  worker that holds the job now, so a job finishes exactly once even when a worker that
  was thought dead wakes up later. ``fail`` requeues the job until ``max_tries``, then
  it is ``failed`` with its last error (a poison job stops).
- A finished job (succeeded or failed) is kept ``result_ttl_s``, then ``expire`` (and, in
  Redis, the key's own expiry) removes it; ``get`` of it is ``NotFound`` from then on.

Times are epoch seconds in the API (milliseconds in storage); every verb takes ``now``
for tests that move the clock.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loopstack.errors import Invalid

if TYPE_CHECKING:
    from loopstack.store.metadata import Database

__all__ = [
    "DEFAULT_MAX_TRIES",
    "DEFAULT_RESULT_TTL_S",
    "FINISHED",
    "STATUSES",
    "Job",
    "JobQueue",
    "new_job_id",
    "open_queue",
]

STATUSES = ("queued", "running", "succeeded", "failed")
FINISHED = ("succeeded", "failed")
DEFAULT_MAX_TRIES = 3
DEFAULT_RESULT_TTL_S = 24 * 3600.0
_MAX_KEY = 256


@dataclass(frozen=True)
class Job:
    """One async inference job as stored: its request, where it stands, its result."""

    job_id: str
    endpoint: str
    status: str
    payload: dict[str, Any]
    tries: int
    max_tries: int
    created_at: float
    idempotency_key: str | None = None
    callback_url: str | None = None
    holder: str | None = None
    lease_expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    #: the callback's outcome: {"status": "delivered"|"failed", "attempts", "error"?}
    callback: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The job as the HTTP API shows it (no payload, no lease holder)."""
        return {
            "job_id": self.job_id,
            "endpoint": self.endpoint,
            "status": self.status,
            "tries": self.tries,
            "max_tries": self.max_tries,
            "idempotency_key": self.idempotency_key,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "expires_at": self.expires_at,
            "result": self.result,
            "error": self.error,
            "callback_url": self.callback_url,
            "callback": self.callback,
        }


class JobQueue(Protocol):
    """The async inference queue (``SqlJobQueue``, ``RedisJobQueue``)."""

    result_ttl_s: float

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
        ...

    def claim(
        self,
        worker: str,
        lease_s: float,
        *,
        endpoints: list[str] | None = None,
        now: float | None = None,
    ) -> Job | None:
        """The oldest claimable job (of ``endpoints``, if given), now held by ``worker``."""
        ...

    def heartbeat(
        self, job_id: str, worker: str, lease_s: float, *, now: float | None = None
    ) -> bool:
        """Renew ``worker``'s lease on the job; False when it no longer holds it."""
        ...

    def complete(
        self, job_id: str, worker: str, result: dict[str, Any], *, now: float | None = None
    ) -> bool:
        """Mark the job succeeded with ``result``, if ``worker`` holds it; whether it did."""
        ...

    def fail(
        self, job_id: str, worker: str, error: str, *, retry: bool = True, now: float | None = None
    ) -> Job | None:
        """Record a try's ``error``: requeued while tries are left (and ``retry``), else
        failed; None when ``worker`` no longer holds the job."""
        ...

    def note_callback(self, job_id: str, outcome: dict[str, Any]) -> None:
        """Record what delivering the job's callback did (never changes its status)."""
        ...

    def get(self, job_id: str, *, now: float | None = None) -> Job:
        """The job; ``NotFound`` for an unknown or expired one."""
        ...

    def expire(self, *, now: float | None = None) -> int:
        """Remove the finished jobs whose TTL ran out; how many."""
        ...


def new_job_id() -> str:
    """A fresh job id (32 hex digits)."""
    return uuid.uuid4().hex


def now_ms(now: float | None) -> int:
    """Epoch milliseconds of ``now`` (default: the clock)."""
    return int(round((time.time() if now is None else now) * 1000))


def check_enqueue(
    endpoint: str, payload: Any, idempotency_key: str | None, callback_url: str | None, tries: int
) -> str:
    """The payload as canonical JSON; ``Invalid`` naming what is wrong with the job."""
    if not endpoint or len(endpoint) > _MAX_KEY:
        raise Invalid(f"a job needs an endpoint name; got {endpoint!r}", field="endpoint")
    if not isinstance(payload, dict):
        raise Invalid(f"a job's payload is a JSON object; got {type(payload).__name__}")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= _MAX_KEY
    ):
        raise Invalid(
            f"'idempotency_key' is text of 1 to {_MAX_KEY} characters; got {idempotency_key!r}",
            field="idempotency_key",
        )
    if callback_url is not None and (
        not isinstance(callback_url, str)
        or not callback_url.startswith(("http://", "https://"))
        or len(callback_url) > 2048
    ):
        raise Invalid(
            f"'callback_url' is an http(s) URL; got {callback_url!r}", field="callback_url"
        )
    if not isinstance(tries, int) or isinstance(tries, bool) or not 1 <= tries <= 100:
        raise Invalid(f"'max_tries' is a whole number from 1 to 100; got {tries!r}")
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"a job's payload must be plain JSON ({exc})") from None


def check_lease(lease_s: float) -> int:
    """The lease in milliseconds; ``Invalid`` for one that is not a positive number."""
    if not isinstance(lease_s, (int, float)) or not lease_s > 0:
        raise Invalid(f"a job lease is a positive number of seconds; got {lease_s!r}")
    return max(1, int(round(lease_s * 1000)))


def open_queue(
    where: str,
    *,
    db: Database | None = None,
    result_ttl_s: float = DEFAULT_RESULT_TTL_S,
    prefix: str = "loopstack:jobs:",
) -> JobQueue:
    """The job queue ``where`` names: ``sql`` (the metadata database ``db``) or a
    ``redis://`` / ``rediss://`` URL (keys under ``prefix``).

    >>> queue = open_queue("sql", db=stores.db)            # doctest: +SKIP
    >>> queue = open_queue("redis://127.0.0.1:6379/0")     # doctest: +SKIP
    """
    if not result_ttl_s > 0:
        raise Invalid(f"a job result's TTL is a positive number of seconds; got {result_ttl_s!r}")
    if where == "sql":
        if db is None:
            raise Invalid("the sql job queue needs the metadata database (db=...)")
        from loopstack.serving._jobs_sql import SqlJobQueue

        return SqlJobQueue(db, result_ttl_s=result_ttl_s)
    if where.startswith(("redis://", "rediss://", "unix://")):
        from loopstack.serving._jobs_redis import RedisJobQueue

        return RedisJobQueue(where, result_ttl_s=result_ttl_s, prefix=prefix)
    raise Invalid(f"the job queue is 'sql' or a redis:// URL; got {where!r}", field="queue")
