"""Measure what a callable costs where it runs: wall time, CPU time and peak memory.

The same code measures a step in the calling thread, in a forked child and in a Ray
worker, so the numbers mean the same on every executor. Peak resident memory comes from
a sampling thread that reads ``/proc/self/statm`` every ~20 ms, and from the kernel's
high-water mark of the process, reset before the call and read after it (Linux >= 4.0):
code that holds the GIL while it allocates (``b"x" * n``) starves the sampler, and a
spike shorter than the sampling period would slip between two samples. Where neither
is available, ``resource.getrusage``'s lifetime peak is the floor. Two measurements
running at once in one process share that mark, so each sees the other's peak. A
process of its own (a forked child, a Ray worker) whose mark could be reset reads the
mark alone, with no sampling thread.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Outcome", "measure", "where"]

T = TypeVar("T")

#: seconds between two samples of the resident set
SAMPLE_PERIOD_S = 0.02
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a submitted callable returned, and what it cost, measured where it ran.

    ``cpu_s`` is the user+system CPU time of the code that ran (the thread's when it ran
    in the caller's thread, the process's when it had a process of its own);
    ``peak_rss_bytes`` the peak resident memory of the process while it ran; ``where``
    is ``"host:pid"``.
    """

    value: T
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    where: str


def where() -> str:
    """``"host:pid"`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _rss_now() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # not Linux: the lifetime peak is all we have
        return _maxrss()


def _maxrss() -> int:
    # ru_maxrss is in KiB on Linux (bytes on macOS, where loopstack does not run steps)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _reset_high_water() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); True if it did."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _high_water() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="loopstack-meter", daemon=True)
        self.peak = _rss_now()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_PERIOD_S):
            self.peak = max(self.peak, _rss_now())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_now())


def measure(fn: Callable[[], T], *, own_process: bool = False) -> Outcome[T]:
    """Call ``fn()`` here and return its value with its wall time, CPU time and peak RSS.

    ``own_process``: this process exists to run ``fn`` (a forked child, a Ray worker):
    CPU time is the process's (threads ``fn`` starts count), and the kernel's peak-RSS
    lifetime peak bounds the sampled peak from below. Otherwise CPU time is this
    thread's, so other threads of the process are not charged to ``fn``. An exception
    from ``fn`` propagates unchanged.

    >>> measure(lambda: sum(range(10))).value
    45
    """
    cpu_clock = time.process_time if own_process else time.thread_time
    reset = _reset_high_water()
    # A process of its own whose kernel mark was reset needs no sampler: nothing else
    # resets the mark there, and the mark is never below a sample. (A forked child then
    # starts no thread of its own: the fewer threads there, the less of the parent's
    # state copied mid-change it can trip on.)
    sampler = None if own_process and reset else _Sampler()
    if sampler is not None:
        sampler.start()
    wall0, cpu0 = time.perf_counter(), cpu_clock()
    try:
        value = fn()
    finally:
        wall, cpu = time.perf_counter() - wall0, cpu_clock() - cpu0
        peak = _rss_now() if sampler is None else sampler.stop()
    if reset:
        peak = max(peak, _high_water())
    elif own_process:
        peak = max(peak, _maxrss())
    return Outcome(
        value=value, wall_s=wall, cpu_s=max(cpu, 0.0), peak_rss_bytes=peak, where=where()
    )
