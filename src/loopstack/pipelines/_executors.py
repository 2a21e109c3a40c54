# STAND-IN: replaced by helper exec's module at merge
"""Where steps run: a small stand-in with the ``local`` executor of the contract only."""

from __future__ import annotations

import abc
import concurrent.futures
import os
import resource
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from loopstack.errors import Invalid

__all__ = ["Executor", "Outcome", "Resources", "executor_for"]

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """A step's resource request."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int | None = None

    @classmethod
    def of(cls, value: Resources | Mapping[str, Any] | None) -> Resources:
        """``value`` as ``Resources`` (``None``: the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if not isinstance(value, Mapping):
            raise Invalid(f"resources must be a mapping or Resources; got {value!r} instead")
        unknown = sorted(set(value) - {"num_cpus", "num_gpus", "memory_mb"})
        if unknown:
            raise Invalid(
                f"resources take num_cpus, num_gpus, memory_mb; got unknown keys {unknown}"
            )
        return cls(**dict(value))


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a submitted callable returned, and what it cost, measured where it ran."""

    value: T
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    where: str


class Executor(abc.ABC):
    """Runs zero-argument callables and measures them."""

    name: str = ""

    @property
    def max_parallel(self) -> int:
        """How many steps it runs at once."""
        return 1

    @abc.abstractmethod
    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> concurrent.futures.Future[Outcome[T]]:
        """Run ``fn``; its outcome (or its exception) in a future."""

    def close(self) -> None:  # noqa: B027 - most executors hold nothing to release
        """Release the executor's workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs each call inline in the calling thread (no timeout in the stand-in)."""

    name = "local"

    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> concurrent.futures.Future[Outcome[T]]:
        future: concurrent.futures.Future[Outcome[T]] = concurrent.futures.Future()
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
            return future
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        future.set_result(
            Outcome(
                value,
                time.perf_counter() - wall0,
                time.thread_time() - cpu0,
                peak,
                f"{socket.gethostname()}:{os.getpid()}",
            )
        )
        return future


def executor_for(
    name: str = "local", *, address: str | None = None, max_workers: int | None = None
) -> Executor:
    """The executor called ``name``."""
    if name == "local":
        return LocalExecutor()
    raise Invalid(f"the executor must be one of 'local', 'process', 'ray'; got {name!r} instead")
