"""In-process online store: dictionaries behind a lock (tests, notebooks)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from loopstack.features.online._base import OnlineBatch, OnlineStore, ViewStats

__all__ = ["MemoryOnlineStore"]

# memory://name shares one set of views per name within the process.
_Row = tuple[int, str | bytes]
_shared: dict[str, tuple[dict[str, dict[str, _Row]], dict[str, int]]] = {}
_shared_lock = threading.Lock()


class MemoryOnlineStore(OnlineStore):
    schemes = ("memory",)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        name = url.split("://", 1)[1] if "://" in url else ""
        if name:
            with _shared_lock:
                self._rows, self._marks = _shared.setdefault(name, ({}, {}))
        else:
            self._rows, self._marks = {}, {}
        self._lock = threading.Lock()

    def write(
        self, view: str, batches: Iterable[OnlineBatch], *, watermark: int | None = None
    ) -> int:
        staged: dict[str, _Row] = {}
        for batch in batches:  # a failing source raises here, before anything is applied
            for key, ts, value in zip(batch.keys, batch.event_ts, batch.values, strict=True):
                old = staged.get(key)
                if old is None or ts >= old[0]:
                    staged[key] = (ts, value)
        kept = 0
        with self._lock:
            rows = self._rows.setdefault(view, {})
            for key, row in staged.items():
                old = rows.get(key)
                if old is None or row[0] >= old[0]:
                    rows[key] = row
                    kept += 1
            if watermark is not None:
                self._marks[view] = watermark
        return kept

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str | bytes] | None]:
        with self._lock:  # a reader never sees half a write
            rows = self._rows.get(view)
            if rows is None:
                return [None] * len(keys)
            return [rows.get(k) for k in keys]

    def scan(self, view: str) -> Iterator[tuple[str, int, str | bytes]]:
        with self._lock:
            items = list(self._rows.get(view, {}).items())
        for key, (ts, value) in items:
            yield key, ts, value

    def stats(self, view: str) -> ViewStats:
        with self._lock:
            rows = self._rows.get(view, {})
            newest = max((ts for ts, _ in rows.values()), default=None)
            return ViewStats(
                rows=len(rows), newest_event_ts=newest, watermark=self._marks.get(view)
            )

    def delete_view(self, view: str) -> None:
        with self._lock:
            self._rows.pop(view, None)
            self._marks.pop(view, None)

    def views(self) -> list[str]:
        with self._lock:
            return sorted(set(self._rows) | set(self._marks))
