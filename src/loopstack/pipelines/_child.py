"""Run one callable in a forked child process and bring back its outcome or its error.

The child is forked (``multiprocessing``'s fork context), so the callable needs no
pickling on the way in: only its result, or its exception, is pickled back through a
pipe. The store's at-fork hook (``store/metadata/_database.py``) gives the child its own
database connections. A child that runs past its timeout is sent SIGTERM, then SIGKILL
after a grace period, and reaped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from loopstack.errors import StepFailed, StepTimeout, excerpt
from loopstack.pipelines._meter import Outcome, measure, where

__all__ = ["Child", "run_in_child"]

T = TypeVar("T")

#: seconds a child has to exit after SIGTERM before it gets SIGKILL
TERM_GRACE_S = 2.0
#: seconds a child that sent its result has to exit before it is stopped
EXIT_WAIT_S = 10.0

_CTX = multiprocessing.get_context("fork")
# A pipe's write end must be closed in the parent before any other child is forked,
# or that child inherits it and the reader never sees the first child's end.
_FORKING = threading.Lock()


def _after_fork_in_child() -> None:
    # the forking thread held _FORKING; a step that runs steps of its own forks again
    global _FORKING
    _FORKING = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Child:
    """A forked child running one step."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.stopped: str | None = None  # why the parent killed it, if it did

    @property
    def pid(self) -> int:
        """The child's process id."""
        return int(self.process.pid)

    def kill(self, reason: str = "closed") -> None:
        """SIGTERM, SIGKILL after ``TERM_GRACE_S`` if it still runs, then reap it."""
        if self.stopped is None:
            self.stopped = reason
        proc = self.process
        if proc.exitcode is None:
            proc.terminate()
            proc.join(TERM_GRACE_S)
            if proc.exitcode is None:
                proc.kill()
        proc.join()


def _dumps(obj: Any) -> tuple[bytes | None, str]:
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), ""
    except Exception as exc:  # noqa: BLE001 - any pickling failure is reported the same way
        return None, f"{type(exc).__name__}: {exc}"


def _child_main(fn: Callable[[], Any], conn: Connection) -> None:
    # a handler inherited from the parent (Ray's, a server's) would turn the parent's
    # SIGTERM into an exception inside the step; the child must simply stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        outcome = measure(fn, own_process=True)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        data, why = _dumps(exc)
        message = ("error", data, excerpt(exc, 500), why, traceback.format_exc(), where())
    else:
        data, why = _dumps(outcome)
        message = ("ok", data, excerpt(outcome.value, 500), why, "", where())
    conn.send_bytes(pickle.dumps(message))
    conn.close()


def _died(proc: Any) -> StepFailed:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return StepFailed(f"the step's process was killed by {name}{hint}")
    return StepFailed(f"the step's process exited with code {code} before it returned a result")


def _result(message: tuple[Any, ...]) -> Outcome[Any]:
    kind, data, text, why, tb, at = message
    value: Any = None
    if data is not None:
        try:
            value = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception whose __init__ needs more args
            why = f"{type(exc).__name__}: {exc}"
            data = None
    if kind == "ok":
        if data is None:
            raise StepFailed(
                f"the step returned {text}, which cannot be pickled back from its process ({why})"
            )
        return value  # type: ignore[no-any-return]
    error = (
        StepFailed(f"the step raised {text}, which cannot be pickled back ({why})")
        if data is None
        else value
    )
    if isinstance(error, BaseException):
        error.add_note(f"raised in the step's process {at}:\n{tb.rstrip()}")
        raise error
    raise StepFailed(f"the step's process sent back {excerpt(error)} instead of an exception")


def run_in_child(
    fn: Callable[[], T],
    timeout_s: float | None = None,
    on_start: Callable[[Child], None] | None = None,
    on_end: Callable[[Child], None] | None = None,
) -> Outcome[T]:
    """Fork, run ``fn()`` measured in the child, and return its ``Outcome`` (or raise what
    it raised, ``StepTimeout`` after ``timeout_s`` seconds, ``StepFailed`` if it died).

    ``on_start`` / ``on_end`` see the child once forked and once reaped (an executor
    keeps them to kill on close).
    """
    with _FORKING, warnings.catch_warnings():
        # Python >= 3.12 warns on forking a process that has threads: what it warns of
        # (locks held by threads that do not exist in the child) is what the store's
        # at-fork hook resets, and a step's own code runs after the fork, not before.
        warnings.filterwarnings("ignore", r".*fork\(\) may lead to deadlocks", DeprecationWarning)
        recv, send = _CTX.Pipe(duplex=False)
        proc = _CTX.Process(target=_child_main, args=(fn, send), name="loopstack-step")
        proc.start()
        send.close()
    child = Child(proc)
    if on_start is not None:
        on_start(child)
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        payload: bytes | None = None
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([recv, proc.sentinel], timeout=left)
            if recv in ready or (ready and recv.poll(0)):
                with contextlib.suppress(EOFError):  # EOF: it died before it sent
                    payload = recv.recv_bytes()
                break
            if ready:  # exited without a word
                break
            if deadline is not None and time.monotonic() >= deadline:
                child.kill("timeout")
                raise StepTimeout(
                    f"the step ran past its timeout of {timeout_s:g}s; "
                    f"its process {child.pid} was stopped"
                )
        # a child that sent its result exits at once, unless the step left processes of
        # its own that multiprocessing waits for: the result is here, so stop waiting
        proc.join(EXIT_WAIT_S)
    finally:
        recv.close()
        if proc.exitcode is None:
            child.kill("abandoned")
        if on_end is not None:
            on_end(child)
    if payload is not None:
        return _result(pickle.loads(payload))
    if child.stopped == "closed":
        raise StepFailed("the executor was closed while the step ran; its process was stopped")
    raise _died(proc)
