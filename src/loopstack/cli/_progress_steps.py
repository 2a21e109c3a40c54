"""A pipeline's steps as they go, for `loopstack pipelines run|resume`.

Each event (a step starting, finishing, coming from the cache, retrying, failing) is one
line on stderr; while steps run, a rich status line underneath says which are running
and for how long. ``--quiet`` silences both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["step_progress"]

_MARKS = {
    "RUNNING": ("▶", "cyan"),
    "FINISHED": ("✓", "green"),
    "CACHED": ("↺", "blue"),
    "REUSED": ("↺", "blue"),
    "RETRYING": ("↻", "yellow"),
    "FAILED": ("✗", "red"),
    "SKIPPED": ("-", "dim"),
}


@contextmanager
def step_progress() -> Iterator[Callable[[str, str, str], None]]:
    """A context whose callable ``(step, status, message)`` reports one step event."""
    import os

    from rich.console import Console

    if os.environ.get("LOOPSTACK_QUIET", "").lower() in {"1", "true", "on"}:
        yield lambda step, status, message: None
        return
    console = Console(stderr=True, highlight=False)
    began = time.monotonic()
    running: dict[str, float] = {}
    live = console.status("", spinner="dots") if console.is_terminal else None

    def show_running() -> None:
        if live is None:
            return
        now = time.monotonic()
        names = ", ".join(f"{s} {now - t:.0f}s" for s, t in running.items())
        live.update(f"running: {names}" if names else "")

    def on_event(step: str, status: str, message: str) -> None:
        mark, colour = _MARKS.get(status, ("·", "white"))
        if status == "RUNNING":
            running[step] = time.monotonic()
        else:
            running.pop(step, None)
        at = time.monotonic() - began
        detail = f" {message}" if message else ""
        console.print(f"[dim]{at:6.1f}s[/dim] [{colour}]{mark} {step}[/{colour}]{detail}")
        show_running()

    if live is None:
        yield on_event
        return
    with live:
        yield on_event
