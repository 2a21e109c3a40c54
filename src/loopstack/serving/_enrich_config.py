"""Feature enrichment's configuration and the circuit breaker around the online store.

An endpoint that enriches takes requests carrying only entity keys (and the request
values its on-demand views need) and reads the model's features from the online store.
Its configuration, in a stored deployment's ``options["enrichment"]`` or from
``loopstack serve --enrich``::

    {"mode": "degraded",                 # or "fail_closed" (the default)
     "defaults": {"trips": 0, "conv_rate": 0.5},   # per feature: model column or view:feature
     "max_age_s": 3600,                  # older values count as stale (beside each view's TTL)
     "timeout_s": 1.0,                   # a store read that takes longer fails
     "breaker": {"failures": 5, "cooldown_s": 30},
     "features": ["driver_stats:trips"], # optional: else the version's training set says
     "online_url": "redis://host:6379/0"}  # optional: else the feature store's default

``fail_closed``: a store failure, or a stale or missing value, fails the request (503
naming the store or the feature). ``degraded``: declared defaults fill stale or missing
values and stand for every feature while the store fails; a feature with no default
still fails closed.

A read that outlives ``timeout_s`` is abandoned, not stopped: it keeps one of the
endpoint's four read threads until the store answers or drops the connection. For
Redis, ``?socket_timeout=2`` on the URL makes the client drop it too.

The breaker counts consecutive store failures (errors and timeouts, not stale values):
after ``failures`` of them it opens for ``cooldown_s`` (requests go straight to the
failure mode, the store untouched), then lets one probe through (half-open): a success
closes it, a failure opens it again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopstack.errors import Invalid, excerpt

__all__ = [
    "BREAKER_STATES",
    "MODES",
    "BreakerConfig",
    "CircuitBreaker",
    "EnrichmentConfig",
]

MODES = ("fail_closed", "degraded")
BREAKER_STATES = ("closed", "open", "half_open")
_KEYS = ("mode", "defaults", "max_age_s", "timeout_s", "breaker", "features", "online_url")
_SCALARS = (str, int, float, bool, type(None))


def _positive(value: Any, what: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise Invalid(
            f"enrichment {what!r} must be a number of seconds above 0"
            f"{' (or null)' if allow_none else ''}; got {excerpt(value)} instead",
            field=what,
        )
    return float(value)


@dataclass(frozen=True)
class BreakerConfig:
    """Open after ``failures`` consecutive store failures, for ``cooldown_s`` seconds."""

    failures: int = 5
    cooldown_s: float = 30.0

    @classmethod
    def parse(cls, doc: Any) -> BreakerConfig:
        """The breaker settings ``doc`` (a dict, or None for the defaults) names."""
        if doc is None:
            return cls()
        if not isinstance(doc, Mapping):
            raise Invalid(
                "enrichment 'breaker' is {'failures': N, 'cooldown_s': S}; got "
                f"{excerpt(doc)} instead",
                field="breaker",
            )
        unknown = sorted(set(doc) - {"failures", "cooldown_s"})
        if unknown:
            raise Invalid(
                f"enrichment 'breaker' has no setting(s) {unknown}; it takes 'failures' "
                "and 'cooldown_s'",
                field="breaker",
            )
        failures = doc.get("failures", 5)
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise Invalid(
                "enrichment breaker 'failures' must be a whole number of at least 1; got "
                f"{excerpt(failures)} instead",
                field="failures",
            )
        cooldown = _positive(doc.get("cooldown_s", 30.0), "cooldown_s")
        return cls(failures, float(cooldown or 30.0))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able values."""
        return {"failures": self.failures, "cooldown_s": self.cooldown_s}


@dataclass(frozen=True)
class EnrichmentConfig:
    """How an endpoint fetches its model's features (see the module docstring).

    >>> EnrichmentConfig.parse({"mode": "degraded", "defaults": {"trips": 0}}).mode
    'degraded'
    """

    mode: str = "fail_closed"
    #: (feature, value) pairs: a feature is the model's input column or ``view:feature``
    defaults: tuple[tuple[str, Any], ...] = ()
    max_age_s: float | None = None
    timeout_s: float = 1.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    features: tuple[str, ...] = ()
    online_url: str | None = None

    @classmethod
    def parse(cls, doc: Any) -> EnrichmentConfig:
        """The configuration ``doc`` names; ``Invalid`` saying which setting is wrong."""
        if isinstance(doc, EnrichmentConfig):
            return doc
        if not isinstance(doc, Mapping):
            raise Invalid(
                "the 'enrichment' option is an object such as {'mode': 'fail_closed'}; got "
                f"{excerpt(doc)} instead",
                field="enrichment",
            )
        unknown = sorted(set(doc) - set(_KEYS))
        if unknown:
            raise Invalid(
                f"the 'enrichment' option has no setting(s) {unknown}; its settings are "
                f"{list(_KEYS)}",
                field="enrichment",
            )
        mode = doc.get("mode", "fail_closed")
        if mode not in MODES:
            raise Invalid(
                f"enrichment 'mode' is one of {list(MODES)}; got {excerpt(mode)} instead",
                field="mode",
            )
        defaults = doc.get("defaults") or {}
        if not isinstance(defaults, Mapping) or not all(isinstance(k, str) for k in defaults):
            raise Invalid(
                "enrichment 'defaults' maps each feature (a model column or 'view:feature') "
                f"to its value; got {excerpt(defaults)} instead",
                field="defaults",
            )
        for key, value in defaults.items():
            if not isinstance(value, _SCALARS) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                raise Invalid(
                    f"the default of feature {key!r} must be a number, text, true/false or "
                    f"null; got {excerpt(value)} instead",
                    field="defaults",
                )
        features = doc.get("features") or []
        if isinstance(features, str) or not isinstance(features, list | tuple):
            raise Invalid(
                "enrichment 'features' is a list of 'view:feature' references; got "
                f"{excerpt(features)} instead",
                field="features",
            )
        for ref in features:
            if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
                raise Invalid(
                    f"a feature reference looks like 'view:feature'; got {excerpt(ref)} instead",
                    field="features",
                )
        url = doc.get("online_url")
        if url is not None and (not isinstance(url, str) or "://" not in url):
            raise Invalid(
                "enrichment 'online_url' is an online store URL (sqlite:///path, redis://host); "
                f"got {excerpt(url)} instead",
                field="online_url",
            )
        if url is not None:
            from loopstack.features.online import SCHEMES

            scheme = url.split(":", 1)[0].lower()
            if scheme not in SCHEMES:
                raise Invalid(
                    f"enrichment 'online_url' must start with one of "
                    f"{', '.join(s + '://' for s in sorted(SCHEMES))}; got {excerpt(url)}",
                    field="online_url",
                )
        return cls(
            mode=mode,
            defaults=tuple(sorted(defaults.items())),
            max_age_s=_positive(doc.get("max_age_s"), "max_age_s", allow_none=True),
            timeout_s=float(_positive(doc.get("timeout_s", 1.0), "timeout_s") or 1.0),
            breaker=BreakerConfig.parse(doc.get("breaker")),
            features=tuple(features),
            online_url=url,
        )

    @property
    def default_values(self) -> dict[str, Any]:
        """The declared defaults as a dict."""
        return dict(self.defaults)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-able values (what ``parse`` takes back)."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "defaults": self.default_values,
            "max_age_s": self.max_age_s,
            "timeout_s": self.timeout_s,
            "breaker": self.breaker.to_dict(),
        }
        if self.features:
            out["features"] = list(self.features)
        if self.online_url is not None:
            out["online_url"] = self.online_url
        return out


class CircuitBreaker:
    """Closed, open for a cool-down after ``failures`` consecutive failures, then half-open
    with one probe in flight. Thread-safe; ``clock`` is injectable for tests.

    >>> breaker = CircuitBreaker(BreakerConfig(failures=2, cooldown_s=10))
    >>> breaker.acquire(), breaker.state
    (True, 'closed')
    """

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._state = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        #: times it opened, requests it turned away while open, failures seen
        self.opened = 0
        self.rejected = 0
        self.failures_seen = 0

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (an open breaker past its cool-down is
        half-open: the next request probes)."""
        with self._lock:
            return self._current()

    def _current(self) -> str:
        if self._state == "open" and self._clock() - self._opened_at >= self.config.cooldown_s:
            self._state, self._probing = "half_open", False
        return self._state

    def acquire(self) -> bool:
        """May a request touch the store now? (False: go straight to the failure mode.)"""
        with self._lock:
            state = self._current()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            self.rejected += 1
            return False

    def success(self) -> None:
        """The store answered: the breaker closes and the failure count restarts."""
        with self._lock:
            self._state, self._failures, self._probing = "closed", 0, False

    def failure(self) -> None:
        """The store failed: count it; open at the threshold, or again after a probe."""
        with self._lock:
            self.failures_seen += 1
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.config.failures:
                if self._state != "open":
                    self.opened += 1
                self._state, self._opened_at, self._probing = "open", self._clock(), False

    def to_dict(self) -> dict[str, Any]:
        """State, consecutive failures and the counters, for an endpoint's description."""
        with self._lock:
            state = self._current()
            return {
                "state": state,
                "consecutive_failures": self._failures,
                "opened": self.opened,
                "rejected": self.rejected,
                "failures": self.failures_seen,
                **self.config.to_dict(),
            }
