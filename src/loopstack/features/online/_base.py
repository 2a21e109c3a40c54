"""The online store interface: the newest row per (feature view, entity key).

A backend keeps, for each feature view, one row per entity key: the event timestamp
of the newest event seen for that entity and its feature values, encoded once by the
caller (``_rows``: a versioned msgpack row, or JSON) so every backend stores the same
bytes and never decodes them. Writes apply a whole materialization atomically, and
never let an older event replace a newer one (late data is dropped per entity, not per
batch).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = ["OnlineBatch", "OnlineStore", "ViewStats"]


@dataclass(frozen=True)
class OnlineBatch:
    """Rows for one view: parallel lists of encoded keys, event times (us) and values."""

    keys: list[str]
    event_ts: list[int]
    values: Sequence[str | bytes]  # encode_rows (binary) or encode_values (JSON)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class ViewStats:
    rows: int
    newest_event_ts: int | None  # microseconds since the epoch, UTC
    watermark: int | None  # the end (us) of the last materialization written


class OnlineStore(abc.ABC):
    """One online store; backends are chosen by URL scheme (see ``open_online_store``)."""

    #: URL scheme(s) this backend answers to
    schemes: tuple[str, ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url

    @abc.abstractmethod
    def write(
        self, view: str, batches: Iterable[OnlineBatch], *, watermark: int | None = None
    ) -> int:
        """Apply every batch, and the watermark, in one atomic step; return the rows kept.

        If iterating ``batches`` raises, nothing is applied. A row whose event time is
        older than the stored row's for the same key is dropped; ties overwrite.
        """

    @abc.abstractmethod
    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str | bytes] | None]:
        """For each encoded key in order: ``(event_ts_us, encoded values)``, or None."""

    @abc.abstractmethod
    def scan(self, view: str) -> Iterator[tuple[str, int, str | bytes]]:
        """Every stored ``(key, event_ts_us, encoded values)`` of a view, in no order."""

    @abc.abstractmethod
    def stats(self, view: str) -> ViewStats:
        """Row count, newest event time and watermark of a view (zeros when unknown)."""

    @abc.abstractmethod
    def delete_view(self, view: str) -> None:
        """Drop every row and the watermark of a view (no error when absent)."""

    @abc.abstractmethod
    def views(self) -> list[str]:
        """The names of the views that have rows or a watermark, sorted."""

    def watermark(self, view: str) -> int | None:
        return self.stats(view).watermark

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections (the store may not be used afterwards)."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
