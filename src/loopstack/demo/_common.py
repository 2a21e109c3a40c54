"""What the demo's modules share: its names, options, outcome and console output."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoFailed", "DemoOptions", "DemoOutcome"]

ENDPOINT = "fraud-api"
MODEL = "fraud"
BASE_FEATURES = [
    "customer_profile:account_age_days",
    "customer_profile:avg_amount_30d",
    "customer_profile:txn_count_30d",
    "merchant_stats:category_code",
    "merchant_stats:merchant_fraud_rate_30d",
    "merchant_stats:merchant_avg_amount",
]
VELOCITY = "customer_velocity:txn_count_1h"
WINDOW_S = 30  # the drift trigger's and the alert rules' window
VELOCITY_TTL_S = 15
PIPELINE = "loopstack.demo._pipeline:retraining"
TERMINAL = ("promoted", "rolled_back", "failed", "cancelled")


@dataclass
class DemoOptions:
    """How ``loopstack demo`` runs (the CLI's flags)."""

    home: Path
    seed: int = 0
    serve_port: int = 8081
    #: the port of ``loopstack server`` (the web UI and the APIs) with ``keep_running``
    port: int = 5000
    keep_running: bool = False
    #: seconds of clean traffic at least before the drift (which starts on the next
    #: boundary of the trigger's window)
    calm_s: float = 10.0
    #: the longest the demo waits for any one stage before it gives up
    stage_timeout_s: float = 150.0


@dataclass
class DemoOutcome:
    """What happened, for the summary (and the tests)."""

    url: str = ""
    versions: dict[int, str] = field(default_factory=dict)  # version -> what became of it
    rollouts: dict[int, str] = field(default_factory=dict)  # rollout id -> final status
    alerts: list[str] = field(default_factory=list)
    firings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


class DemoFailed(Exception):
    """A stage of the demo did not happen as the story needs (with what was seen)."""


# -- output ---------------------------------------------------------------------------------
class Say:
    def __init__(self, console: Any) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.stage = 0

    def clock(self) -> str:
        return f"[dim]{time.monotonic() - self.t0:6.1f}s[/]"

    def head(self, title: str) -> None:
        self.stage += 1
        self.console.print(f"\n{self.clock()} [bold cyan]{self.stage}. {title}[/]")

    def line(self, text: str) -> None:
        self.console.print(f"{self.clock()}   {text}")

    @contextmanager
    def waiting(self, what: str) -> Iterator[Callable[[str], None]]:
        with self.console.status(what) as status:
            yield lambda text: status.update(f"{what} [dim]{text}[/]")


def gate_lines(report: Any) -> list[str]:
    out = []
    for r in report.results:
        mark = "[green]passed[/]" if r.passed else "[red]failed[/]"
        out.append(f"  gate {r.gate}: {mark} - {r.reason}")
    return out
