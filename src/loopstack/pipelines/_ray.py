"""The Ray executor: each step one Ray task with the step's resource request.

Ray is imported only when this executor is made. The address is the caller's, else
``LOOPSTACK_RAY_ADDRESS``, else a local instance (started, or attached to if one is
already running on this machine). Workers get this process's ``LOOPSTACK_*``
environment variables, so they open the same stores, and its code directories on
``PYTHONPATH``, so they import the same code. A task is never retried by Ray
(``max_retries=0``): loopstack retries a step itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from loopstack.errors import Invalid, StepFailed, StepTimeout, StoreUnavailable, excerpt
from loopstack.pipelines._child import _dumps, _result
from loopstack.pipelines._executors import Executor, Outcome, Resources, _check_timeout
from loopstack.pipelines._meter import measure, where

__all__ = ["RayExecutor", "import_ray", "worker_env"]

T = TypeVar("T")

ADDRESS_ENV = "LOOPSTACK_RAY_ADDRESS"
_INSTALL = 'pip install "loopstack[ray]"'
_remote: dict[str, Any] = {}  # the task function, made remote once per process
_connect = threading.Lock()


def import_ray() -> Any:
    """The ``ray`` module, or ``Invalid`` saying how to install it."""
    try:
        import ray  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise Invalid(
            f"the 'ray' executor needs Ray, which is not installed here; {_INSTALL}",
            field="executor",
        ) from exc
    return ray


def worker_env() -> dict[str, str]:
    """The environment a worker needs to see what this process sees: every
    ``LOOPSTACK_*`` variable, and ``PYTHONPATH`` naming this process's code directories
    (its ``sys.path`` outside the interpreter's own prefix) ahead of any it already had."""
    env = {k: v for k, v in os.environ.items() if k.startswith("LOOPSTACK_")}
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        inside = any(path == p or path.startswith(p + os.sep) for p in prefixes)
        if not inside and os.path.isdir(path) and path not in paths:
            paths.append(path)
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and entry not in paths:
            paths.append(entry)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _task(fn: Callable[[], Any]) -> Iterator[Any]:
    """Runs in the Ray worker: says it started (a step's timeout counts from then, not
    from while it queued for resources), then gives the outcome, or the error as
    ``_child`` sends it."""
    import traceback

    yield "started"
    try:
        yield ("ok", measure(fn, own_process=True))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        data, why = _dumps(exc)
        yield ("error", data, excerpt(exc, 500), why, traceback.format_exc(), where())


def _translate(ray: Any, exc: BaseException) -> BaseException:
    """A Ray error as the step's own exception, or as ``StepFailed``."""
    errors = ray.exceptions
    if isinstance(exc, errors.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException) and not isinstance(cause, errors.RayError):
            cause.add_note(f"raised in the step's Ray task:\n{str(exc).rstrip()}")
            return cause
        return StepFailed(f"the step's Ray task failed: {excerpt(str(exc), 2000)}")
    if isinstance(exc, errors.WorkerCrashedError | errors.OutOfMemoryError):
        return StepFailed(
            f"the step's Ray worker died (killed, or out of memory?): {excerpt(str(exc), 500)}"
        )
    if isinstance(exc, errors.RayError):
        return StepFailed(f"Ray could not run the step: {excerpt(str(exc), 2000)}")
    return exc


class RayExecutor(Executor):
    """Runs each step as a Ray task asking for the step's ``Resources``; a step past its
    timeout is cancelled (its worker killed). ``max_workers`` bounds how many of this
    executor's tasks are in flight at once (default: as many as the cluster schedules).
    """

    name = "ray"

    def __init__(self, address: str | None = None, max_workers: int | None = None) -> None:
        self._ray = ray = import_ray()
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise Invalid(
                f"the 'max_workers' parameter must be a whole number >= 1 or None; "
                f"got {excerpt(max_workers)} instead",
                field="max_workers",
            )
        self._max_workers = max_workers
        self._slots = threading.Semaphore(max_workers) if max_workers else None
        address = address or os.environ.get(ADDRESS_ENV) or None
        #: a machine's own instance cannot grow: a request it cannot meet never starts
        self._fixed_size = address is None
        with _connect:
            if not ray.is_initialized():
                try:
                    ray.init(
                        address=address,
                        include_dashboard=False,
                        ignore_reinit_error=True,
                        configure_logging=False,
                    )
                except Exception as exc:  # noqa: BLE001 - translated at the boundary
                    where_to = address or "a local instance"
                    raise StoreUnavailable(
                        f"cannot start or reach Ray at {where_to}: {exc}"
                    ) from exc
            if "task" not in _remote:
                _remote["task"] = ray.remote(_task)
        self._lock = threading.Lock()
        self._running: set[Any] = set()  # the tasks in flight, to cancel on close
        self._closed = False

    @property
    def max_parallel(self) -> int:
        """``max_workers`` if given, else the cluster's CPUs."""
        if self._max_workers:
            return self._max_workers
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def _check_fits(self, resources: Resources) -> None:
        total = self._ray.cluster_resources()
        cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
        memory = total.get("memory")
        too_much = resources.num_cpus > cpus or resources.num_gpus > gpus
        if memory is not None and resources.memory_mb is not None:
            too_much = too_much or resources.memory_mb * 1024 * 1024 > memory
        if too_much:
            mib = "?" if memory is None else f"{memory / 1024 / 1024:.0f}"
            raise Invalid(
                f"the step asks for {resources}, more than the local Ray instance has "
                f"({cpus:g} CPUs, {gpus:g} GPUs, {mib} MiB of memory): it could never start",
                field="resources",
            )

    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> Future[Outcome[T]]:
        """Submit ``fn()`` as a Ray task (see ``Executor.submit``)."""
        _check_timeout(timeout_s)
        resources = Resources.of(resources)
        if self._fixed_size:
            self._check_fits(resources)
        with self._lock:
            if self._closed:
                raise Invalid("this Ray executor is closed; open a new one to run steps")
        future: Future[Outcome[T]] = Future()
        future.set_running_or_notify_cancel()
        threading.Thread(
            target=self._run,
            args=(fn, resources, timeout_s, worker_env(), future),
            name="loopstack-ray-step",
            daemon=True,
        ).start()
        return future

    def _run(
        self,
        fn: Callable[[], T],
        resources: Resources,
        timeout_s: float | None,
        env: dict[str, str],
        future: Future[Outcome[T]],
    ) -> None:
        if self._slots is not None:
            self._slots.acquire()
        try:
            future.set_result(self._call(fn, resources, timeout_s, env))
        except BaseException as exc:  # noqa: BLE001 - the future carries it to the caller
            future.set_exception(exc)
        finally:
            if self._slots is not None:
                self._slots.release()

    def _call(
        self, fn: Callable[[], T], resources: Resources, timeout_s: float | None, env: Any
    ) -> Outcome[T]:
        ray = self._ray
        options: dict[str, Any] = {
            "num_cpus": resources.num_cpus,
            "num_gpus": resources.num_gpus,
            "max_retries": 0,
            "num_returns": "streaming",  # "started", then the outcome
            "runtime_env": {"env_vars": env},
        }
        if resources.memory_mb is not None:
            options["memory"] = resources.memory_mb * 1024 * 1024
        with self._lock:
            if self._closed:
                raise StepFailed("the executor was closed before the step started")
            task = _remote["task"].options(**options).remote(fn)
            self._running.add(task)
        try:
            try:
                ray.get(next(task))  # waits while Ray queues it for its resources
                started = time.monotonic()
                ready, _ = ray.wait([task], timeout=timeout_s)
                if not ready:
                    ray.cancel(task, force=True)
                    raise StepTimeout(
                        f"the step ran past its timeout of {timeout_s:g}s "
                        f"({time.monotonic() - started:.1f}s since it started); "
                        "its task was cancelled"
                    )
                message = ray.get(next(task))
            except ray.exceptions.TaskCancelledError as exc:
                raise StepFailed(
                    "the executor was closed while the step ran; its task was cancelled"
                ) from exc
            except ray.exceptions.RayError as exc:
                raise _translate(ray, exc) from None
        finally:
            with self._lock:
                self._running.discard(task)
        if message[0] == "ok":
            return message[1]  # type: ignore[no-any-return]
        return _result(message)

    def close(self) -> None:
        """Cancel this executor's tasks still running (their futures raise
        ``StepFailed``). The Ray instance stays up for the rest of the process."""
        with self._lock:
            self._closed = True
            refs = list(self._running)
        for ref in refs:
            with contextlib.suppress(Exception):  # already finished or gone
                self._ray.cancel(ref, force=True)
