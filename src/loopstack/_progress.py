"""Progress on long work, for the CLI and the Python API alike.

Long operations (registering or validating a large dataset, building a training set,
packaging and uploading a model, reproducing a run) name their phases as they go::

    with phases("registering dataset churn-train", ["reading", "hashing", "uploading"]) as step:
        step("reading")
        ...

A rich line on stderr shows the operation, its current phase and the elapsed time, and
disappears when the work ends. It shows only when stderr is a terminal, never with
``LOOPSTACK_QUIET=1`` (``loopstack --quiet``), and always with ``LOOPSTACK_PROGRESS=always``
(for logs that want it, and tests). Nothing is printed for work that ends within
``DELAY_S``: a quick call stays quiet.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["DELAY_S", "enabled", "phases"]

#: work shorter than this prints nothing
DELAY_S = 0.5


def enabled() -> bool:
    """Whether progress lines are shown in this process now."""
    mode = os.environ.get("LOOPSTACK_PROGRESS", "auto").lower()
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("LOOPSTACK_QUIET", "").lower() in {"1", "true", "on"}:
        return False
    return sys.stderr.isatty()


#: the phase callback of the operation running in this context: work nested inside it
#: (registering the training set a retrieval builds) reports on the same line
_current: ContextVar[Callable[[str], None] | None] = ContextVar("loopstack_progress", default=None)


@contextmanager
def phases(title: str, names: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """A context whose callable moves the progress line to the named phase."""
    outer = _current.get()
    if outer is not None:
        yield lambda name: outer(f"{title}: {name}")
        return
    if not enabled():
        yield lambda name: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    delay = 0.0 if os.environ.get("LOOPSTACK_PROGRESS", "").lower() == "always" else DELAY_S
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:  # a log: one line per phase, no live display
        yield from _log_lines(console, title, names)
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=console.is_terminal,
    )
    task = progress.add_task(title, total=len(names) or None)
    state: dict[str, Any] = {"started": False, "text": title}
    lock = threading.Lock()
    began = time.monotonic()

    def show() -> None:
        with lock:
            if not state["started"] and time.monotonic() - began >= delay:
                progress.start()
                state["started"] = True
            if state["started"]:
                progress.update(task, description=state["text"])

    def step(name: str) -> None:
        index = names.index(name) + 1 if name in names else 0
        where = f" ({index}/{len(names)})" if index else ""
        state["text"] = f"{title}: {name}{where}"
        if index:
            progress.update(task, completed=index - 1)
        show()

    timer = threading.Timer(delay, show) if delay else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    else:
        show()
    token = _current.set(step)
    try:
        yield step
    finally:
        _current.reset(token)
        if timer is not None:
            timer.cancel()
        with lock:
            if state["started"]:
                progress.update(task, completed=len(names), description=f"{title}: done")
                progress.stop()


def _log_lines(console: Any, title: str, names: Sequence[str]) -> Iterator[Callable[[str], None]]:
    began = time.monotonic()

    def step(name: str) -> None:
        index = names.index(name) + 1 if name in names else 0
        where = f" ({index}/{len(names)})" if index else ""
        console.print(f"{title}: {name}{where}", soft_wrap=True)

    token = _current.set(step)
    try:
        yield step
    finally:
        _current.reset(token)
    console.print(f"{title}: done in {time.monotonic() - began:.1f} s", soft_wrap=True)
