"""Buffered metric writes: many log_metric calls become one batch write.

A buffer flushes when it holds ``max_points``, when ``flush()`` is called, at
run end, and from a background thread at least every ``interval`` seconds.
A point is durable once the flush that carried it has returned.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from loopstack.tracking._entities import Metric

__all__ = ["MetricBuffer"]

FLUSH_INTERVAL_S = 1.0
MAX_POINTS = 10_000


class MetricBuffer:
    def __init__(
        self,
        write: Callable[[list[Metric]], None],
        *,
        interval: float = FLUSH_INTERVAL_S,
        max_points: int = MAX_POINTS,
    ) -> None:
        self._write = write
        self._interval = interval
        self._max_points = max_points
        self._pending: list[Metric] = []
        self._lock = threading.Lock()  # guards _pending
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._last_flush = time.monotonic()
        self._error: BaseException | None = None
        _flusher.register(self)

    def add(self, points: list[Metric]) -> None:
        self._raise_background_error()
        with self._lock:
            self._pending.extend(points)
            full = len(self._pending) >= self._max_points
        if full:
            self.flush()

    def flush(self) -> int:
        """Write every pending point; returns how many were written."""
        self._raise_background_error()
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            if not batch:
                return 0
            try:
                self._write(batch)
            except BaseException:
                with self._lock:  # keep the points: a retry may still land them
                    self._pending[:0] = batch
                raise
            return len(batch)

    def _due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last_flush >= self._interval

    def _background_flush(self) -> None:
        try:
            self.flush()
        except BaseException as exc:  # surfaced on the next call in the owner's thread
            self._error = exc

    def _raise_background_error(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def close(self, final_write: Callable[[list[Metric]], None] | None = None) -> None:
        """Flush what is pending (through ``final_write`` if given) and stop the timer."""
        if final_write is None:
            self.flush()
        else:
            self._raise_background_error()
            with self._flush_lock, self._lock:
                batch, self._pending = self._pending, []
            final_write(batch)
        _flusher.unregister(self)


class _Flusher:
    """One daemon thread per process that flushes every buffer that is due."""

    def __init__(self) -> None:
        self._buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, buf: MetricBuffer) -> None:
        with self._lock:
            self._buffers.add(buf)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="loopstack-metric-flush", daemon=True
                )
                self._thread.start()

    def unregister(self, buf: MetricBuffer) -> None:
        with self._lock:
            self._buffers.discard(buf)

    def _loop(self) -> None:
        while True:
            time.sleep(0.1)
            with self._lock:
                buffers = list(self._buffers)
            for buf in buffers:
                if buf._due():
                    buf._background_flush()


_flusher = _Flusher()
