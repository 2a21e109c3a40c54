"""Streaming inference: events from a stream scored by an endpoint's stored deployment.

``StreamScorer`` consumes a ``StreamSource`` (``RedisStreamSource`` over a Redis Stream
consumer group; ``KafkaStreamSource``, untested, beside it), answers each event through
the serving path, writes the prediction log, acknowledges only what is durable, and
writes nothing twice (see ``_scorer``). ``open_source(url, ...)`` picks the source by
the URL's scheme.
"""

from __future__ import annotations

from typing import Any

from loopstack.errors import Invalid
from loopstack.serving.stream._kafka import KafkaStreamSource
from loopstack.serving.stream._metrics import StreamMetrics
from loopstack.serving.stream._redis import RedisStreamSource, parse_redis_source
from loopstack.serving.stream._scorer import StreamScorer, StreamStats, parse_write_feature
from loopstack.serving.stream._source import StreamEvent, StreamSource

__all__ = [
    "KafkaStreamSource",
    "RedisStreamSource",
    "StreamEvent",
    "StreamMetrics",
    "StreamScorer",
    "StreamSource",
    "StreamStats",
    "open_source",
    "parse_redis_source",
    "parse_write_feature",
]


def open_source(url: str, group: str, consumer: str, **options: Any) -> StreamSource:
    """The stream source ``url`` names: ``redis://host:port/db?stream=NAME`` or
    ``kafka://broker:port/topic`` (untested adapter)."""
    if url.startswith(("redis://", "rediss://")):
        return RedisStreamSource(url, group, consumer, **options)
    if url.startswith("kafka://"):
        kafka_options = {k: v for k, v in options.items() if k == "dead_letter"}
        return KafkaStreamSource(url, group, consumer, **kafka_options)
    raise Invalid(
        f"a stream source is redis://host:port/db?stream=NAME or kafka://broker/topic; "
        f"got {url[:120]!r}",
        field="source",
    )
