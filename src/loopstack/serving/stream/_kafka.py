"""A Kafka topic as a ``StreamSource`` (confluent-kafka). UNTESTED here: no Kafka broker
runs in this project's tests, so this adapter is a sketch of the mapping, kept beside
the tested Redis one. Install ``confluent-kafka`` yourself to use it.

Mapping: the consumer group is Kafka's; ``ack`` commits the offsets after the batch is
durable; ``reclaim`` is Kafka's rebalance (a dead consumer's partitions are reassigned
and read again from the last commit), so it returns nothing; the processed-id set is
kept in memory for the partitions held (ids are ``topic/partition/offset``), which is
enough because offsets only move forward past committed work; ``dead_letter`` produces
to the dead-letter topic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loopstack.errors import Invalid
from loopstack.serving.stream._source import StreamEvent, StreamSource

__all__ = ["KafkaStreamSource"]


class KafkaStreamSource(StreamSource):  # pragma: no cover - no broker in the tests
    """``kafka://broker:9092/topic`` as a stream source (untested; see the module doc)."""

    def __init__(self, url: str, group: str, consumer: str, dead_letter: str | None = None) -> None:
        try:
            import confluent_kafka  # type: ignore[import-not-found]
        except ImportError:
            raise Invalid(
                "a kafka:// stream source needs the confluent-kafka package "
                "(pip install confluent-kafka); it is not installed",
                field="source",
            ) from None
        rest = url.removeprefix("kafka://")
        brokers, _, topic = rest.partition("/")
        if not brokers or not topic:
            raise Invalid(f"a Kafka source is kafka://broker:port/topic; got {url!r}")
        self.name = topic
        self.dead_letter_stream = dead_letter or f"{topic}.dead"
        self._consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": brokers,
                "group.id": group,
                "client.id": consumer,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer.subscribe([topic])
        self._producer = confluent_kafka.Producer({"bootstrap.servers": brokers})
        self._messages: dict[str, Any] = {}

    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        out = []
        for msg in self._consumer.consume(count, block_ms / 1000):
            if msg.error():
                continue
            event_id = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
            self._messages[event_id] = msg
            value = msg.value() or b""
            out.append(
                StreamEvent(
                    event_id, {"data": value.decode("utf-8", "replace")}, msg.timestamp()[1]
                )
            )
        return out

    def reclaim(self, count: int) -> list[StreamEvent]:
        return []  # Kafka reassigns a dead consumer's partitions itself

    def done(self, ids: Sequence[str]) -> set[str]:
        return set()

    def ack(self, ids: Sequence[str]) -> None:
        messages = [self._messages.pop(i) for i in ids if i in self._messages]
        for msg in messages:
            self._consumer.commit(message=msg, asynchronous=False)

    def dead_letter(self, event: StreamEvent, reason: str) -> None:
        body = {"event_id": event.id, "reason": reason, "payload": dict(event.fields)}
        self._producer.produce(self.dead_letter_stream, json.dumps(body).encode())
        self._producer.flush()
        self.ack([event.id])

    def pending(self) -> int:
        return len(self._messages)

    def close(self) -> None:
        self._consumer.close()
