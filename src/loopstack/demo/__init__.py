"""``loopstack demo``: the closed loop end to end on a seeded synthetic world of card
payments (see ``loopstack.demo._run`` for the stages). The top layer: it drives every
package below it, as a user would."""

from __future__ import annotations

from loopstack.demo._common import DemoFailed, DemoOptions, DemoOutcome
from loopstack.demo._run import run_demo

__all__ = ["DemoFailed", "DemoOptions", "DemoOutcome", "run_demo"]
