"""Per-caller rate limits of the serving app: a token bucket per caller, 429 past it.

Each caller (its token when auth is on, else its client address) has a bucket of
``burst`` requests that refills at ``rate`` per second; a request finding the bucket
empty is answered 429 with ``Retry-After`` (whole seconds until a request is let
through again), in the API's error shape, without reading its body. Health and metrics
are never limited (probes and scrapers must always get through).

The buckets live in each worker process: with ``--workers W`` a caller spreading its
connections over every worker may get up to ``W x rate``. The check is a dictionary
lookup and a little arithmetic on the event loop: no lock, no thread, no I/O.
"""

from __future__ import annotations

import math
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from loopstack.errors import Invalid, RateLimited

__all__ = ["UNLIMITED_PATHS", "RateLimit", "TokenBuckets"]

#: paths that are never limited: health probes and the metrics scrape
UNLIMITED_PATHS = frozenset({"/health", "/metrics", "/v2/health/live", "/v2/health/ready"})
_MAX_CALLERS = 100_000  # buckets kept at once; full (idle) ones are dropped first


class TokenBuckets:
    """One token bucket per key: ``burst`` tokens, refilled at ``rate`` per second.

    >>> buckets = TokenBuckets(rate=2, burst=2)
    >>> [buckets.take("a", now=0.0) for _ in range(3)]
    [0.0, 0.0, 0.5]
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0 or math.isinf(rate):
            raise Invalid(f"a rate limit is a positive number per second; got {rate!r}")
        burst = max(1.0, rate) if burst is None or burst == 0 else burst
        if not burst >= 1 or math.isinf(burst):
            raise Invalid(f"a rate limit's burst is at least 1 request; got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens left, when counted]

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token from ``key``'s bucket: 0.0 if there was one (the request goes
        on), else the seconds until there is one (the request is refused, nothing taken)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_CALLERS:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled (a caller gone quiet); if none has, all."""
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= _MAX_CALLERS:
            self._buckets.clear()


def caller_key(scope: Scope) -> str:
    """Whom a request counts against: its verified token (left in the scope's state by the
    request gate when auth is on), else its client address."""
    from loopstack.server._security import VERIFIED_PRINCIPAL

    principal = scope.get("state", {}).get(VERIFIED_PRINCIPAL)
    token_id = getattr(principal, "token_id", None)
    if token_id:
        return f"token:{token_id}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class RateLimit:
    """ASGI middleware: ``rate`` requests per second per caller, bursts of ``burst``.

    Placed inside the request gate, so that with auth on it counts verified tokens (a
    made-up token is refused 401 by the gate before it gets a bucket of its own).
    """

    def __init__(self, app: ASGIApp, *, rate: float, burst: float | None = None) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(caller_key(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        from loopstack.server._request_gate import answer_error

        retry_after = max(1, math.ceil(wait))
        refusal = RateLimited(
            f"this caller is over its rate limit of {self.buckets.rate:g} requests per second "
            f"(bursts of {self.buckets.burst:g}); retry after {retry_after} s",
            field="rate",
        )
        await answer_error(scope, refusal, send, headers={"Retry-After": str(retry_after)})
