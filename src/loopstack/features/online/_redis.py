"""Redis online store: one hash per view, entity key -> ``b"<event_ts_us>|<values>"``.

A read of any number of entities is one HMGET (one round trip). A materialization
is buffered client-side and sent as one MULTI/EXEC of Lua calls, so either every
row lands or none does; the script drops rows older than the stored ones.

URL: ``redis://host:6379/0?prefix=loopstack`` (``prefix`` namespaces the keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loopstack.errors import StoreUnavailable
from loopstack.features.online._base import OnlineBatch, OnlineStore, ViewStats

__all__ = ["RedisOnlineStore"]

_CHUNK = 2_000  # rows per script call: keeps each call's argument list small
# KEYS: rows hash, meta hash. ARGV: view, watermark ('' for none), then key, ts, value...
_UPSERT = """
local kept = 0
for i = 3, #ARGV, 3 do
  local key, ts = ARGV[i], tonumber(ARGV[i + 1])
  local old = redis.call('HGET', KEYS[1], key)
  local newer = true
  if old then
    local bar = string.find(old, '|', 1, true)
    newer = ts >= tonumber(string.sub(old, 1, bar - 1))
  end
  if newer then
    redis.call('HSET', KEYS[1], key, ARGV[i + 1] .. '|' .. ARGV[i + 2])
    kept = kept + 1
  end
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return kept
"""


class RedisOnlineStore(OnlineStore):
    schemes = ("redis", "rediss")

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise StoreUnavailable(
                "the Redis online store needs redis-py: pip install 'loopstack[redis]'"
            ) from exc
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", "loopstack")
        plain = urlunsplit(parts._replace(query=urlencode(query)))
        self._errors = redis.RedisError
        self.client = redis.Redis.from_url(plain)
        self._script = self.client.register_script(_UPSERT)
        self._meta = f"{self.prefix}:online:__watermarks__"

    def _key(self, view: str) -> str:
        return f"{self.prefix}:online:{view}"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise StoreUnavailable(f"the Redis online store failed: {exc}") from exc

    def write(
        self, view: str, batches: Iterable[OnlineBatch], *, watermark: int | None = None
    ) -> int:
        pipe = self.client.pipeline(transaction=True)
        keys = [self._key(view), self._meta]
        mark = "" if watermark is None else str(watermark)
        args: list[Any] = [view, ""]
        for batch in batches:  # a failing source raises here, before anything is sent
            for key, ts, value in zip(batch.keys, batch.event_ts, batch.values, strict=True):
                args += (key, ts, value)
                if len(args) >= 2 + 3 * _CHUNK:
                    self._script(keys=keys, args=args, client=pipe)
                    args = [view, ""]
        args[1] = mark
        self._script(keys=keys, args=args, client=pipe)
        results = self._call(pipe.execute)
        return int(sum(results))

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str | bytes] | None]:
        if not keys:
            return []  # HMGET needs at least one field
        try:
            blobs = self.client.hmget(self._key(view), keys)
        except self._errors as exc:
            raise StoreUnavailable(f"the Redis online store failed: {exc}") from exc
        out: list[tuple[int, str | bytes] | None] = []
        for blob in blobs:
            if blob is None:
                out.append(None)
            else:
                ts, _, value = blob.partition(b"|")  # type: ignore[union-attr,arg-type]
                out.append((int(ts), value))
        return out

    def scan(self, view: str) -> Iterator[tuple[str, int, str | bytes]]:
        for key, blob in self.client.hscan_iter(self._key(view), count=5_000):
            ts, _, value = blob.partition(b"|")
            yield key.decode(), int(ts), value

    def stats(self, view: str) -> ViewStats:
        rows = newest = None
        for _, ts, _ in self.scan(view):
            rows = (rows or 0) + 1
            newest = ts if newest is None or ts > newest else newest
        mark = self._call(self.client.hget, self._meta, view)
        return ViewStats(
            rows=rows or 0,
            newest_event_ts=newest,
            watermark=int(mark) if mark is not None else None,
        )

    def delete_view(self, view: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._key(view))
        pipe.hdel(self._meta, view)
        self._call(pipe.execute)

    def views(self) -> list[str]:
        start = len(f"{self.prefix}:online:")
        names = {
            k.decode()[start:]
            for k in self.client.scan_iter(match=f"{self.prefix}:online:*", count=1_000)
        }
        names.discard("__watermarks__")
        names |= {k.decode() for k in self._call(self.client.hkeys, self._meta)}
        return sorted(names)

    def close(self) -> None:
        self.client.close()
