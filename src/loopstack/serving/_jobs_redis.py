"""The job queue in Redis: a hash per job, a sorted set of ready jobs per endpoint (by
enqueue time), a sorted set of leases (by expiry) and one of finished jobs (by expiry).

Every verb that changes a job is one Lua script, which Redis runs atomically: a claim
first returns the jobs whose lease lapsed to their endpoint's ready set (or fails those
out of tries), then pops the oldest ready job and leases it, so two claimers never get
one job and a job is never lost between the sets. A finished job's hash also gets a
key expiry a minute past its TTL, so Redis frees it even if ``expire`` never runs.
"""

from __future__ import annotations

import json
from typing import Any

from loopstack.errors import Invalid, NotFound, StoreUnavailable
from loopstack.serving.jobs import (
    DEFAULT_MAX_TRIES,
    Job,
    check_enqueue,
    check_lease,
    new_job_id,
    now_ms,
)

__all__ = ["RedisJobQueue"]

_MARGIN_MS = 60_000

_ENQUEUE = """
local p, id, ep, key, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if key ~= '' then
  local idem = p .. 'idem:' .. ep .. ':' .. key
  local known = redis.call('GET', idem)
  if known and redis.call('EXISTS', p .. 'job:' .. known) == 1 then return known end
  redis.call('SET', idem, id)
end
local fields = cjson.decode(ARGV[6])
for k, v in pairs(fields) do redis.call('HSET', p .. 'job:' .. id, k, v) end
redis.call('ZADD', p .. 'ready:' .. ep, at, id)
redis.call('SADD', p .. 'endpoints', ep)
return id
"""

_CLAIM = """
local p, worker, at, lease, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local lapsed = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', at)
for _, id in ipairs(lapsed) do
  redis.call('ZREM', p .. 'leases', id)
  local k = p .. 'job:' .. id
  if redis.call('HGET', k, 'status') == 'running' then
    local tries = tonumber(redis.call('HGET', k, 'tries'))
    local most = tonumber(redis.call('HGET', k, 'max_tries'))
    redis.call('HDEL', k, 'holder', 'lease_expires_at')
    if tries >= most then
      redis.call('HSET', k, 'status', 'failed', 'finished_at', at, 'expires_at', at + ttl,
        'error', 'its worker stopped before finishing (lease expired) on the last try')
      redis.call('ZADD', p .. 'done', at + ttl, id)
      redis.call('PEXPIRE', k, ttl + tonumber(ARGV[6]))
    else
      redis.call('HSET', k, 'status', 'queued')
      redis.call('ZADD', p .. 'ready:' .. redis.call('HGET', k, 'endpoint'),
        redis.call('HGET', k, 'created_at'), id)
    end
  end
end
local best, best_score, best_ep = nil, nil, nil
local scope = {}
for i = 7, #ARGV do scope[#scope + 1] = ARGV[i] end
if #scope == 0 then scope = redis.call('SMEMBERS', p .. 'endpoints') end
for _, ep in ipairs(scope) do
  local head = redis.call('ZRANGE', p .. 'ready:' .. ep, 0, 0, 'WITHSCORES')
  if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
    best, best_score, best_ep = head[1], tonumber(head[2]), ep
  end
end
if not best then return nil end
redis.call('ZREM', p .. 'ready:' .. best_ep, best)
local k = p .. 'job:' .. best
redis.call('HSET', k, 'status', 'running', 'holder', worker, 'lease_expires_at', at + lease,
  'started_at', at)
redis.call('HINCRBY', k, 'tries', 1)
redis.call('ZADD', p .. 'leases', at + lease, best)
return best
"""

_HELD = """
local k = ARGV[1] .. 'job:' .. ARGV[2]
if redis.call('HGET', k, 'status') ~= 'running' or redis.call('HGET', k, 'holder') ~= ARGV[3]
then return 0 end
"""

_HEARTBEAT = (
    _HELD
    + """
redis.call('HSET', k, 'lease_expires_at', ARGV[4])
redis.call('ZADD', ARGV[1] .. 'leases', ARGV[4], ARGV[2])
return 1
"""
)

_FINISH = (
    _HELD
    + """
local at, ttl, status = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
redis.call('ZREM', ARGV[1] .. 'leases', ARGV[2])
redis.call('HDEL', k, 'holder', 'lease_expires_at')
if status == 'retry' then
  local tries = tonumber(redis.call('HGET', k, 'tries'))
  local most = tonumber(redis.call('HGET', k, 'max_tries'))
  if tries < most then
    redis.call('HSET', k, 'status', 'queued', 'error', ARGV[7])
    redis.call('ZADD', ARGV[1] .. 'ready:' .. redis.call('HGET', k, 'endpoint'),
      redis.call('HGET', k, 'created_at'), ARGV[2])
    return 1
  end
  status = 'failed'
end
redis.call('HSET', k, 'status', status, 'finished_at', at, 'expires_at', at + ttl)
if status == 'succeeded' then
  redis.call('HSET', k, 'result', ARGV[7])
  redis.call('HDEL', k, 'error')
else
  redis.call('HSET', k, 'error', ARGV[7])
end
redis.call('ZADD', ARGV[1] .. 'done', at + ttl, ARGV[2])
redis.call('PEXPIRE', k, ttl + tonumber(ARGV[8]))
return 1
"""
)

_EXPIRE = """
local p = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', p .. 'done', '-inf', ARGV[2])
for _, id in ipairs(gone) do
  local k = p .. 'job:' .. id
  local key = redis.call('HGET', k, 'idempotency_key')
  if key then
    local idem = p .. 'idem:' .. redis.call('HGET', k, 'endpoint') .. ':' .. key
    if redis.call('GET', idem) == id then redis.call('DEL', idem) end
  end
  redis.call('DEL', k)
  redis.call('ZREM', p .. 'done', id)
end
return #gone
"""


def _job(raw: dict[bytes, bytes]) -> Job:
    f = {k.decode(): v.decode() for k, v in raw.items()}
    return Job(
        job_id=f["job_id"],
        endpoint=f["endpoint"],
        status=f["status"],
        payload=json.loads(f["payload"]),
        tries=int(f["tries"]),
        max_tries=int(f["max_tries"]),
        created_at=int(f["created_at"]) / 1000,
        idempotency_key=f.get("idempotency_key"),
        callback_url=f.get("callback_url"),
        holder=f.get("holder"),
        lease_expires_at=int(f["lease_expires_at"]) / 1000 if "lease_expires_at" in f else None,
        started_at=int(f["started_at"]) / 1000 if "started_at" in f else None,
        finished_at=int(f["finished_at"]) / 1000 if "finished_at" in f else None,
        expires_at=int(f["expires_at"]) / 1000 if "expires_at" in f else None,
        result=json.loads(f["result"]) if "result" in f else None,
        error=f.get("error"),
        callback=json.loads(f["callback"]) if "callback" in f else None,
    )


class RedisJobQueue:
    """``JobQueue`` over the Redis at ``url``, its keys under ``prefix``."""

    def __init__(self, url: str, *, result_ttl_s: float, prefix: str) -> None:
        import redis

        try:
            self.redis = redis.Redis.from_url(url, socket_timeout=10)
        except ValueError as exc:
            raise Invalid(f"not a Redis URL {url!r}: {exc}", field="queue") from None
        self.url = url
        self.prefix = prefix
        self.result_ttl_s = result_ttl_s
        self._scripts = {
            name: self.redis.register_script(src)
            for name, src in (
                ("enqueue", _ENQUEUE),
                ("claim", _CLAIM),
                ("heartbeat", _HEARTBEAT),
                ("finish", _FINISH),
                ("expire", _EXPIRE),
            )
        }

    def _run(self, name: str, *args: Any) -> Any:
        import redis

        try:
            return self._scripts[name](args=[self.prefix, *args])
        except redis.ConnectionError as exc:
            raise StoreUnavailable(f"cannot reach the job queue's Redis: {exc}") from None

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
        at, job_id = now_ms(now), new_job_id()
        fields: dict[str, Any] = {
            "job_id": job_id,
            "endpoint": endpoint,
            "status": "queued",
            "payload": body,
            "tries": 0,
            "max_tries": max_tries,
            "created_at": at,
        }
        if idempotency_key is not None:
            fields["idempotency_key"] = idempotency_key
        if callback_url is not None:
            fields["callback_url"] = callback_url
        strings = {k: str(v) for k, v in fields.items()}  # Lua would print big numbers as 1e+12
        got = self._run("enqueue", job_id, endpoint, idempotency_key or "", at, json.dumps(strings))
        return self.get(got.decode(), now=now)

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
        if endpoints is not None and not endpoints:
            return None
        got = self._run(
            "claim", worker, now_ms(now), lease_ms, self._ttl_ms(), _MARGIN_MS, *(endpoints or [])
        )
        return None if got is None else self.get(got.decode(), now=now)

    def heartbeat(
        self, job_id: str, worker: str, lease_s: float, *, now: float | None = None
    ) -> bool:
        """Renew ``worker``'s lease on the job; False when it no longer holds it."""
        until = now_ms(now) + check_lease(lease_s)
        return bool(self._run("heartbeat", job_id, worker, until))

    def complete(
        self, job_id: str, worker: str, result: dict[str, Any], *, now: float | None = None
    ) -> bool:
        """Mark the job succeeded with ``result``, if ``worker`` holds it; whether it did."""
        body = json.dumps(result, separators=(",", ":"))
        return bool(
            self._run(
                "finish", job_id, worker, now_ms(now), self._ttl_ms(), "succeeded", body, _MARGIN_MS
            )
        )

    def fail(
        self, job_id: str, worker: str, error: str, *, retry: bool = True, now: float | None = None
    ) -> Job | None:
        """Record a try's ``error``: requeued while tries are left (and ``retry``), else
        failed; None when ``worker`` no longer holds the job."""
        how = "retry" if retry else "failed"
        done = self._run(
            "finish", job_id, worker, now_ms(now), self._ttl_ms(), how, error, _MARGIN_MS
        )
        return self.get(job_id, now=now) if done else None

    def note_callback(self, job_id: str, outcome: dict[str, Any]) -> None:
        """Record what delivering the job's callback did (never changes its status)."""
        key = f"{self.prefix}job:{job_id}"
        if self.redis.exists(key):
            self.redis.hset(key, "callback", json.dumps(outcome, separators=(",", ":")))

    def get(self, job_id: str, *, now: float | None = None) -> Job:
        """The job; ``NotFound`` for an unknown or expired one."""
        import redis

        try:
            raw = self.redis.hgetall(f"{self.prefix}job:{job_id}")
        except redis.ConnectionError as exc:
            raise StoreUnavailable(f"cannot reach the job queue's Redis: {exc}") from None
        if not raw:
            raise NotFound(f"no job {job_id!r} (unknown, or its result expired)")
        job = _job(raw)  # type: ignore[arg-type]
        if job.expires_at is not None and job.expires_at * 1000 <= now_ms(now):
            raise NotFound(f"no job {job_id!r} (unknown, or its result expired)")
        return job

    def expire(self, *, now: float | None = None) -> int:
        """Remove the finished jobs whose TTL ran out; how many."""
        return int(self._run("expire", now_ms(now)))
