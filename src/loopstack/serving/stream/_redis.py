"""Redis Streams as a ``StreamSource``: a consumer group, XREADGROUP, XAUTOCLAIM, XACK.

The source URL is ``redis://host:port/db?stream=NAME`` (``rediss://`` for TLS; the
``stream`` parameter is required, every other part is redis-py's). Beside the stream,
the processed-id set of the group lives in one sorted set,
``<stream>:loopstack:done:<group>``, each id scored by its event time; marking ids
processed and acknowledging them is one MULTI/EXEC, so either both happen or neither.
Ids older than ``done_ttl_s`` (by event time) are trimmed from the set as acks go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loopstack.errors import Invalid, StoreUnavailable
from loopstack.serving.stream._source import StreamEvent, StreamSource

__all__ = ["RedisStreamSource", "parse_redis_source"]

#: a week of processed ids per group by default
DONE_TTL_S = 7 * 24 * 3600


def parse_redis_source(url: str) -> tuple[str, str]:
    """``(connection URL, stream name)`` of ``redis://host:port/db?stream=NAME``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise Invalid(
            f"a stream source is redis://host:port/db?stream=NAME; got {url[:120]!r}",
            field="source",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    streams = [v for k, v in query if k == "stream"]
    if len(streams) != 1 or not streams[0]:
        raise Invalid(
            "a Redis stream source names its stream once: redis://host:port/db?stream=NAME; "
            f"got {url[:120]!r}",
            field="source",
        )
    rest = urlencode([(k, v) for k, v in query if k != "stream"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), streams[0]


def _ms_of(event_id: str) -> int:
    return int(event_id.split("-", 1)[0])


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class RedisStreamSource(StreamSource):
    """One consumer of a Redis Stream's consumer group (created, from the stream's start,
    if it does not exist).

    >>> src = RedisStreamSource("redis://127.0.0.1:6379/0?stream=clicks", "scorers", "c1")
    """

    def __init__(
        self,
        url: str,
        group: str = "loopstack",
        consumer: str = "consumer-1",
        *,
        dead_letter: str | None = None,
        claim_idle_ms: int = 30_000,
        done_ttl_s: float = DONE_TTL_S,
        start: str = "0",
    ) -> None:
        import redis

        connection, self.name = parse_redis_source(url)
        self.group, self.consumer = group, consumer
        self.dead_letter_stream = dead_letter or f"{self.name}:dead"
        self.claim_idle_ms = claim_idle_ms
        self.done_ttl_s = done_ttl_s
        self.done_key = f"{self.name}:loopstack:done:{group}"
        self._redis = redis.Redis.from_url(connection, socket_timeout=30)
        self._error = redis.RedisError
        self._own_pending = True  # first reclaim: this consumer's own pending entries
        self._claim_cursor = "0-0"
        try:
            self._redis.xgroup_create(self.name, group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreUnavailable(
                    f"cannot create the consumer group {group!r}: {exc}"
                ) from exc
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis at {connection} does not answer: {exc}") from exc

    def _events(self, entries: Any, redelivered: bool) -> list[StreamEvent]:
        out = []
        for raw_id, fields in entries or []:
            if fields is None:  # deleted from the stream while pending
                continue
            event_id = _text(raw_id)
            data = {_text(k): _text(v) for k, v in fields.items()}
            out.append(StreamEvent(event_id, data, _ms_of(event_id), redelivered))
        return out

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._error as exc:
            raise StoreUnavailable(f"Redis stream {self.name!r}: {exc}") from exc

    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        """New events (``>``) for this consumer."""
        got = self._call(
            self._redis.xreadgroup,
            self.group,
            self.consumer,
            {self.name: ">"},
            count=count,
            block=block_ms or None,
        )
        return self._events(got[0][1] if got else [], False)

    def reclaim(self, count: int) -> list[StreamEvent]:
        """This consumer's own pending events first (a restart), then those idle for
        ``claim_idle_ms`` on any consumer (XAUTOCLAIM)."""
        if self._own_pending:
            got = self._call(
                self._redis.xreadgroup, self.group, self.consumer, {self.name: "0"}, count=count
            )
            events = self._events(got[0][1] if got else [], True)
            if events:
                return events
            self._own_pending = False
        cursor, entries, *_ = self._call(
            self._redis.xautoclaim,
            self.name,
            self.group,
            self.consumer,
            self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        self._claim_cursor = _text(cursor)
        return self._events(entries, True)

    def done(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        scores = self._call(self._redis.zmscore, self.done_key, list(ids))
        return {i for i, s in zip(ids, scores, strict=True) if s is not None}

    def ack(self, ids: Sequence[str]) -> None:
        """ZADD to the processed set and XACK, in one MULTI/EXEC."""
        if not ids:
            return
        horizon = (time.time() - self.done_ttl_s) * 1000
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(self.done_key, {i: _ms_of(i) for i in ids})
        pipe.xack(self.name, self.group, *ids)
        pipe.zremrangebyscore(self.done_key, "-inf", f"({horizon:.0f}")
        self._call(pipe.execute)

    def dead_letter(self, event: StreamEvent, reason: str) -> None:
        payload = json.dumps(dict(event.fields), ensure_ascii=False)
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(
            self.dead_letter_stream,
            {"event_id": event.id, "stream": self.name, "reason": reason, "payload": payload},
        )
        pipe.zadd(self.done_key, {event.id: event.ts_ms})
        pipe.xack(self.name, self.group, event.id)
        self._call(pipe.execute)

    def pending(self) -> int:
        got = self._call(self._redis.xpending, self.name, self.group)
        return int(got["pending"])

    def close(self) -> None:
        self._redis.close()
