"""The one interface every stream source implements: read a batch, ack, reclaim,
dead-letter, and remember which events were already written (idempotence).

A ``StreamEvent`` is one entry: its id (unique within the stream), its fields as the
source gave them, the time it entered the stream (epoch ms, for the end-to-end lag) and
how many times it was delivered (more than once: it may have been written already).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["StreamEvent", "StreamSource"]


@dataclass(frozen=True)
class StreamEvent:
    """One event of a stream, as delivered to this consumer."""

    id: str
    fields: Mapping[str, str]
    ts_ms: int
    redelivered: bool = False


class StreamSource(abc.ABC):
    """Where a ``StreamScorer`` reads events (Redis Streams; a Kafka adapter beside it).

    At-least-once: ``read`` hands out events that stay pending until ``ack``; events a
    dead consumer held come back through ``reclaim``. ``done`` and ``ack`` keep the
    processed-id set beside the stream, so an event written once is never written again.
    """

    #: the stream's name, as the prediction log's request ids carry it
    name: str

    @abc.abstractmethod
    def read(self, count: int, block_ms: int) -> list[StreamEvent]:
        """Up to ``count`` new events for this consumer, waiting at most ``block_ms``."""

    @abc.abstractmethod
    def reclaim(self, count: int) -> list[StreamEvent]:
        """Events delivered to this consumer (or a dead one, idle long enough) and never
        acknowledged: this consumer owns them now."""

    @abc.abstractmethod
    def done(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` were already written and acknowledged (the processed set)."""

    @abc.abstractmethod
    def ack(self, ids: Sequence[str]) -> None:
        """Mark ``ids`` processed and acknowledge them, in one step where the source can."""

    @abc.abstractmethod
    def dead_letter(self, event: StreamEvent, reason: str) -> None:
        """Put ``event`` (its original fields) on the dead-letter stream with ``reason``,
        and acknowledge it."""

    @abc.abstractmethod
    def pending(self) -> int:
        """How many events of the group are delivered and not yet acknowledged."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the connection."""
