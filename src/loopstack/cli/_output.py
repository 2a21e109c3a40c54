"""How every command writes: one rich console per call, times, durations, one-line errors."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

__all__ = [
    "console",
    "err_console",
    "fail",
    "fmt_compact",
    "fmt_duration",
    "fmt_seconds",
    "fmt_time",
    "fmt_value",
    "short",
]

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
    """A console on the current stderr."""
    return _make(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: <message>`` in red on stderr and exit with ``code``; the message is
    shown as written (``loopstack[grpc]`` is not read as markup)."""
    import typer
    from rich.markup import escape

    err_console().print(
        f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True, highlight=False
    )
    raise typer.Exit(code)


def fmt_time(ms: int | None) -> str:
    """A millisecond timestamp as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(start_ms: int | None, end_ms: int | None) -> str:
    """The time between two millisecond timestamps: ``4.2s``, ``3m07s``, ``2h05m``."""
    if not start_ms or not end_ms:
        return "-"
    return fmt_seconds((end_ms - start_ms) / 1000)


def fmt_seconds(seconds: float | None) -> str:
    """A duration in seconds as ``4.2s``, ``3m07s`` or ``2h05m``; ``-`` for none."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_value(value: Any) -> str:
    """The one way every command shows a number: counts with thousands separators,
    metric floats to 4 significant digits; anything else as text.

    >>> fmt_value(3_000_000), fmt_value(3e6), fmt_value(0.912345), fmt_value(1.23e-05)
    ('3,000,000', '3,000,000', '0.9123', '1.23e-05')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if 1e3 <= abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def fmt_compact(value: Any) -> str:
    """A number in at most 7 characters, for tables of many narrow cells: whole below
    10,000 (``4,959``; ``19.9``, ``0.0194``: 3 significant digits), then ``126k``,
    ``12.3M``; anything else as ``fmt_value`` shows it.

    >>> fmt_compact(4959), fmt_compact(125561.0), fmt_compact(19.88), fmt_compact(-2.5e7)
    ('4,959', '126k', '19.9', '-25M')
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return fmt_value(value)
    size = abs(value)
    if size < 10_000:
        if float(value).is_integer() or size >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if size >= 1e-3 else f"{value:.1e}"
    for unit, scale in (("k", 1e3), ("M", 1e6), ("B", 1e9), ("T", 1e12)):
        if size < scale * 999.5 or unit == "T":
            shown = f"{value / scale:.3g}"
            return shown + unit if "e" not in shown else f"{value:.1e}"
    return f"{value:.1e}"  # pragma: no cover - the loop returns


def short(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
