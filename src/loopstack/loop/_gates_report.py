"""What the gates found: one result per gate, with the numbers behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import StringIO
from typing import Any

__all__ = ["GateReport", "GateResult"]


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: ``gate`` names it (``primary:roc_auc``, ``guardrail:log_loss``,
    ``fairness:recall by gender``, ``data_validation``, ``lineage``), ``reason`` says why
    in a sentence, ``evidence`` holds the numbers (values, deltas, CI, p, per slice and
    per group)."""

    gate: str
    passed: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "reason": self.reason,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(
            str(data["gate"]), bool(data["passed"]), str(data["reason"]), data.get("evidence", {})
        )


@dataclass(frozen=True)
class GateReport:
    """Every gate's result for one challenger (against ``champion``, when there is one).

    >>> report = evaluate_gates(gates, "models:/fraud/4", "models:/fraud@production", data=df)
    >>> report.passed, report.failed_reasons()
    """

    results: list[GateResult]
    challenger: str | None = None
    champion: str | None = None
    evaluation_id: str | None = None

    @property
    def passed(self) -> bool:
        """True when every gate passed (and there was at least one)."""
        return bool(self.results) and all(r.passed for r in self.results)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def failed_reasons(self) -> list[str]:
        """``"<gate>: <reason>"`` for each gate that failed, in evaluation order."""
        return [f"{r.gate}: {r.reason}" for r in self.failed]

    def raise_for_failures(self, subject: str | None = None) -> GateReport:
        """Raise ``GateFailed`` naming each failed gate and why; return self when all passed.

        >>> evaluate_gates(gates, "models:/fraud/4", data=df).raise_for_failures()
        """
        if not self.passed:
            from loopstack.errors import GateFailed

            who = subject or self.challenger or "the challenger"
            raise GateFailed(
                f"{who} failed {len(self.failed)} of {len(self.results)} gates: "
                + "; ".join(self.failed_reasons()),
                field="gates",
            )
        return self

    def get(self, gate: str) -> GateResult:
        """The result of the gate named ``gate``; ``KeyError`` if there is none."""
        for r in self.results:
            if r.gate == gate:
                return r
        raise KeyError(gate)

    def summary(self) -> str:
        against = f" against {self.champion}" if self.champion else " (no champion)"
        who = self.challenger or "the challenger"
        if self.passed:
            return f"{who} passed all {len(self.results)} gates{against}"
        return f"{who} FAILED {len(self.failed)} of {len(self.results)} gates{against}"

    def render(self, width: int = 80) -> str:
        """A table of the gates for a terminal ``width`` columns wide."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title=self.summary(), title_justify="left", expand=False)
        table.add_column("gate", overflow="fold", max_width=28)
        table.add_column("ok", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for r in self.results:
            table.add_row(r.gate, "pass" if r.passed else "FAIL", r.reason)
        out = StringIO()
        Console(file=out, width=width, color_system=None).print(table)
        return out.getvalue()

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(self.render())

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "challenger": self.challenger,
            "champion": self.champion,
            "evaluation_id": self.evaluation_id,
            "results": [r.to_dict() for r in self.results],
            "failed_reasons": self.failed_reasons(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        """A report from ``to_dict``'s form (what the API answers)."""
        return cls(
            [GateResult.from_dict(r) for r in data.get("results", [])],
            challenger=data.get("challenger"),
            champion=data.get("champion"),
            evaluation_id=data.get("evaluation_id"),
        )
