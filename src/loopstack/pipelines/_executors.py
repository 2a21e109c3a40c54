"""Where a pipeline step runs: in the calling thread, in a forked process, or on Ray.

Every executor takes a zero-argument callable and gives back a future of its
``Outcome`` (value, wall time, CPU time, peak RSS, measured where it ran). A failure
comes out of ``future.result()`` as the step's own exception type, with the traceback
from where it ran in its ``__notes__``; a timeout as ``StepTimeout``; a process that
died (killed, out of memory) as ``StepFailed`` naming its signal or exit code.

>>> with executor_for("process", max_workers=2) as ex:  # doctest: +SKIP
...     ex.submit(lambda: 6 * 7, timeout_s=10).result().value
42
"""

from __future__ import annotations

import abc
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, TypeVar

from loopstack.errors import Invalid, excerpt
from loopstack.pipelines._child import Child, run_in_child
from loopstack.pipelines._meter import Outcome, measure

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "Outcome",
    "ProcessExecutor",
    "Resources",
    "executor_for",
]

T = TypeVar("T")

#: the executors ``executor_for`` knows, by name
EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class Resources:
    """A step's resource request: CPUs, GPUs (fractions allowed) and memory in MiB.

    The local executors run a step whatever it asks for; Ray schedules it on a node
    that has them and does not run more than fit at once.

    >>> Resources.of({"num_cpus": 2, "memory_mb": 512})
    Resources(num_cpus=2.0, num_gpus=0.0, memory_mb=512)
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Invalid(
                    f"the resource {name!r} must be a number >= 0; got {excerpt(value)} instead",
                    field=name,
                )
            if not (math.isfinite(value) and value >= 0):
                raise Invalid(
                    f"the resource {name!r} must be a number >= 0; got {value!r} instead",
                    field=name,
                )
            object.__setattr__(self, name, float(value))
        mem = self.memory_mb
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, int) or mem <= 0):
            raise Invalid(
                "the resource 'memory_mb' must be a whole number of MiB > 0 or None; "
                f"got {excerpt(mem)} instead",
                field="memory_mb",
            )

    @classmethod
    def of(cls, value: Resources | Mapping[str, Any] | None) -> Resources:
        """``value`` as ``Resources``: itself, the defaults for ``None``, or built from a
        mapping with the keys ``num_cpus``, ``num_gpus``, ``memory_mb`` (``Invalid`` on
        any other key or a bad value)."""
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if not isinstance(value, Mapping):
            raise Invalid(
                "resources must be a Resources, a mapping or None; "
                f"got {type(value).__name__} {excerpt(value)} instead",
                field="resources",
            )
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise Invalid(
                f"resources take the keys {known}; got unknown keys {unknown} instead",
                field="resources",
            )
        return cls(**dict(value))


def _check_timeout(timeout_s: float | None) -> None:
    if timeout_s is None:
        return
    ok = not isinstance(timeout_s, bool) and isinstance(timeout_s, int | float)
    if not (ok and math.isfinite(timeout_s) and timeout_s > 0):
        raise Invalid(
            f"the 'timeout_s' parameter must be a number of seconds > 0 or None; "
            f"got {excerpt(timeout_s)} instead",
            field="timeout_s",
        )


class Executor(abc.ABC):
    """Runs a pipeline's steps. Use as a context manager, or call ``close()``."""

    #: "local", "process", "ray"
    name: str = ""

    @property
    def max_parallel(self) -> int:
        """How many steps this executor runs at once."""
        return 1

    @abc.abstractmethod
    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> Future[Outcome[T]]:
        """Start ``fn()`` and return the future of its ``Outcome``.

        The future raises the exception ``fn`` raised (its remote traceback in
        ``__notes__``), ``StepTimeout`` when it ran past ``timeout_s`` seconds (it was
        then stopped), or ``StepFailed`` when its process died.
        """

    def close(self) -> None:  # noqa: B027 - most executors hold nothing to free
        """Stop what still runs and free the executor's resources."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _settle(future: Future[Outcome[T]], call: Callable[[], Outcome[T]]) -> None:
    try:
        outcome = call()
    except BaseException as exc:  # noqa: BLE001 - the future carries it to the caller
        future.set_exception(exc)
    else:
        future.set_result(outcome)


class LocalExecutor(Executor):
    """Runs each step in the calling thread: the future is done when ``submit`` returns.

    A step with a timeout runs in a forked child process instead, which is killed
    (SIGTERM, then SIGKILL) when the time is up: a thread cannot be stopped.
    """

    name = "local"

    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> Future[Outcome[T]]:
        """Run ``fn()`` now (see ``Executor.submit``)."""
        _check_timeout(timeout_s)
        future: Future[Outcome[T]] = Future()
        future.set_running_or_notify_cancel()
        if timeout_s is None:
            _settle(future, lambda: measure(fn))
        else:
            _settle(future, lambda: run_in_child(fn, timeout_s))
        return future


class ProcessExecutor(Executor):
    """Runs each step in its own forked child process, ``max_workers`` at once at most
    (default: the number of CPUs); results and exceptions come back pickled through a
    pipe. ``submit`` is thread-safe; ``close`` kills the children still running and
    cancels the steps still waiting for a turn.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise Invalid(
                f"the 'max_workers' parameter must be a whole number >= 1 or None; "
                f"got {excerpt(max_workers)} instead",
                field="max_workers",
            )
        self._max_workers = max_workers
        self._slots = threading.Semaphore(max_workers)
        self._lock = threading.Lock()
        self._closed = False
        self._children: set[Child] = set()
        self._waiting: set[Future[Any]] = set()
        self._threads: set[threading.Thread] = set()

    @property
    def max_parallel(self) -> int:
        """``max_workers``."""
        return self._max_workers

    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> Future[Outcome[T]]:
        """Queue ``fn()`` for a child process (see ``Executor.submit``)."""
        _check_timeout(timeout_s)
        future: Future[Outcome[T]] = Future()
        thread = threading.Thread(
            target=self._run, args=(fn, timeout_s, future), name="loopstack-step", daemon=True
        )
        with self._lock:
            if self._closed:
                raise Invalid("this process executor is closed; open a new one to run steps")
            self._waiting.add(future)
            self._threads.add(thread)
        thread.start()
        return future

    def _run(
        self, fn: Callable[[], T], timeout_s: float | None, future: Future[Outcome[T]]
    ) -> None:
        try:
            with self._slots:
                with self._lock:
                    self._waiting.discard(future)
                    if self._closed:
                        future.cancel()
                if not future.set_running_or_notify_cancel():  # cancelled while it waited
                    return
                _settle(future, lambda: run_in_child(fn, timeout_s, self._started, self._ended))
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _started(self, child: Child) -> None:
        with self._lock:
            self._children.add(child)
            closed = self._closed
        if closed:  # close() ran while this child was being forked
            child.kill()

    def _ended(self, child: Child) -> None:
        with self._lock:
            self._children.discard(child)

    def close(self) -> None:
        """Kill the children still running (their futures raise ``StepFailed``) and
        cancel the steps still waiting for a turn."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting), set()
            children = list(self._children)
            threads = list(self._threads)
        for future in waiting:
            future.cancel()
        for child in children:
            child.kill()
        for thread in threads:
            thread.join(timeout=10)


def executor_for(
    name: str = "local", *, address: str | None = None, max_workers: int | None = None
) -> Executor:
    """The executor called ``name``: ``"local"`` (the calling thread), ``"process"``
    (forked processes, ``max_workers`` at once) or ``"ray"`` (tasks on the Ray cluster at
    ``address``, else ``LOOPSTACK_RAY_ADDRESS``, else a local instance).

    >>> executor_for("local").submit(lambda: 1).result().value
    1
    """
    if name == "local":
        return LocalExecutor()
    if name == "process":
        return ProcessExecutor(max_workers=max_workers)
    if name == "ray":
        from loopstack.pipelines._ray import RayExecutor

        return RayExecutor(address=address, max_workers=max_workers)
    raise Invalid(
        f"the executor must be one of {list(EXECUTORS)}; got {excerpt(name)} instead",
        field="executor",
    )
