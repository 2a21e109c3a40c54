"""Writers of one database in one process take turns, first come first served.

Both backends serialise writers anyway (SQLite has one write lock; on PostgreSQL every
write appends to the audit chain and locks its head row). Letting them queue inside
the database costs twice: on SQLite the losers sleep in the busy handler, in steps that
grow to 100 ms, and a late-comer can win over one that has slept for a second, so the
tail grows; and every waiter holds a pooled connection (and a server thread), so reads
wait for a connection behind writers. Here a writer waits on a FIFO queue *before* it
takes a connection: at most one writer per process holds one, the lock passes to the
next writer without a sleep, and the wait is bounded (the caller's deadline) and, when
``max_waiting`` is set, so is the queue.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["WriteGate"]


class WriteGate:
    """A FIFO lock with a timeout and an optional bound on the number of waiters."""

    def __init__(self, max_waiting: int | None = None) -> None:
        self.max_waiting = max_waiting
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    @property
    def waiting(self) -> int:
        """How many callers wait for the gate now."""
        return len(self._waiters)

    def acquire(self, timeout: float) -> bool:
        """Take the gate within ``timeout`` seconds; ``False`` if the time ran out or the
        queue was full (then without waiting)."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            if self.max_waiting is not None and len(self._waiters) >= self.max_waiting:
                return False
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=max(timeout, 0.0)):
            return True  # release() handed the gate over
        with self._mutex:
            try:
                self._waiters.remove(turn)
            except ValueError:  # handed over just as the time ran out: it is ours
                return True
            return False

    def release(self) -> None:
        """Pass the gate to the longest waiter, or open it."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # stays held: ownership moves
            else:
                self._held = False
