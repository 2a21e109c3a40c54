"""The stream consumer's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["StreamMetrics"]

#: end-to-end lag buckets, seconds (event entered the stream -> prediction durable)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class StreamMetrics:
    """``loopstack_stream_events_total{outcome}`` (scored, skipped, dead_lettered) and
    ``loopstack_stream_lag_seconds`` (a histogram), labelled with the stream and endpoint.

    >>> m = StreamMetrics(); m.render().startswith(b"#")
    True
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        stream: str = "",
        endpoint: str = "",
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = registry or CollectorRegistry()
        events = Counter(
            "loopstack_stream_events",
            "Stream events handled, by outcome (scored, skipped: already written, dead_lettered).",
            ["stream", "endpoint", "outcome"],
            registry=self.registry,
        )
        lag = Histogram(
            "loopstack_stream_lag_seconds",
            "End-to-end lag: the event's stream time to its prediction being durable.",
            ["stream", "endpoint"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._events, self._lag = events, lag
        self.bind(stream, endpoint)

    def bind(self, stream: str, endpoint: str) -> None:
        """Label every metric with ``stream`` and ``endpoint``."""
        self.lag = self._lag.labels(stream, endpoint)
        self.events = _Outcomes(self._events, stream, endpoint)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) in a thread; the port."""
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Outcomes:
    def __init__(self, counter: Any, stream: str, endpoint: str) -> None:
        self._counter, self._stream, self._endpoint = counter, stream, endpoint

    def labels(self, outcome: str) -> Any:
        return self._counter.labels(self._stream, self._endpoint, outcome)
