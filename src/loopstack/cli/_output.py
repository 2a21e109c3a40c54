"""How every command writes: one rich console per call, times, durations, one-line errors."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

__all__ = ["console", "err_console", "fail", "fmt_duration", "fmt_time", "fmt_value", "short"]

# Piped or captured output has no terminal width; rich would fall back to 80 columns and
# fold run ids and metric values, which makes the output useless to grep.
_PIPE_WIDTH = 200


def _make(stderr: bool) -> Console:
    con = Console(stderr=stderr, highlight=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(stderr=stderr, highlight=False, width=_PIPE_WIDTH)
    return con


def console() -> Console:
    """A console on the current stdout (created per call: test runners swap sys.stdout)."""
    return _make(stderr=False)


def err_console() -> Console:
    return _make(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: <message>`` in red on stderr and exit with ``code``."""
    import typer

    err_console().print(
        f"[bold red]error:[/] {message}", markup=True, soft_wrap=True, highlight=False
    )
    raise typer.Exit(code)


def fmt_time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(start_ms: int | None, end_ms: int | None) -> str:
    if not start_ms or not end_ms:
        return "-"
    seconds = max(0.0, (end_ms - start_ms) / 1000)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_value(value: Any) -> str:
    """Metrics to 6 significant digits (as MLflow's UI shows them); everything else as text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
