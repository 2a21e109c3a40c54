"""What the gates found: one result per gate, with the numbers behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import StringIO
from typing import Any

__all__ = ["GateReport", "GateResult", "evidence_summary", "recorded_gates", "version_number"]


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

    def summary(self) -> str:
        """The numbers that decided the gate, in one short line: the metric's value, the
        champion's, the change against the bound it needed, the bootstrap's p; a
        fairness gate's gap and worst group; the validation suite; the lineage run.

        >>> result.summary()
        'accuracy 0.9533 vs 0.9467, +0.006667 >= -0.05, p=0.02'
        """
        return evidence_summary(self.evidence) or self.reason

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``from_dict`` reads it back)."""
        return {
            "gate": self.gate,
            "passed": self.passed,
            "reason": self.reason,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """A result from ``to_dict``'s form."""
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
    #: when the report was recorded on its model version (ms), and by whom (the actor of
    #: its audited ``gates.evaluate`` event); None for a report not read from the store
    evaluated_at: int | None = None
    recorded_by: str | None = None

    @property
    def passed(self) -> bool:
        """True when every gate passed (and there was at least one)."""
        return bool(self.results) and all(r.passed for r in self.results)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failed(self) -> list[GateResult]:
        """The results of the gates that did not pass, in evaluation order."""
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
        """One line: passed all N gates, or FAILED k of N, against which champion."""
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
        """A JSON-able form: what the API answers (``from_dict`` reads it back)."""
        return {
            "passed": self.passed,
            "challenger": self.challenger,
            "champion": self.champion,
            "evaluation_id": self.evaluation_id,
            "evaluated_at": self.evaluated_at,
            "recorded_by": self.recorded_by,
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
            evaluated_at=data.get("evaluated_at"),
            recorded_by=data.get("recorded_by"),
        )


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _threshold_summary(e: dict[str, Any]) -> str:
    parts = [f"{e['metric']} {_num(e.get('value'))}"]
    if e.get("champion") is not None:
        parts[0] += f" vs {_num(e['champion'])}"
    if e.get("min_value") is not None:
        parts.append(f"min {_num(e['min_value'])}")
    if e.get("max_value") is not None:
        parts.append(f"max {_num(e['max_value'])}")
    change = e.get("relative_delta", e.get("delta"))
    if change is not None:  # positive: the challenger is better
        bound = e.get("required_change") or 0.0
        unit = " rel" if "relative_delta" in e else ""
        parts.append(f"{change:+.4g}{unit} {'>=' if change >= bound else '<'} {bound:+.4g}")
    boot = e.get("bootstrap")
    if isinstance(boot, dict) and boot.get("p_value") is not None:
        parts.append(f"p={boot['p_value']:.3g}")
    return ", ".join(parts)


def _fairness_summary(e: dict[str, Any]) -> str:
    groups = e.get("per_group") or {}
    worst = e.get("worst_group")
    value = (groups.get(worst) or {}).get("value") if worst is not None else None
    parts = [f"{e['metric']} gap {_num(e['gap'])}"]
    if e.get("max_gap") is not None:
        parts[0] += f" (max {_num(e['max_gap'])})"
    if worst is not None:
        parts.append(f"worst {e.get('group')}={worst} {_num(value)}")
    if e.get("floor") is not None:
        parts.append(f"floor {_num(e['floor'])}")
    return ", ".join(parts)


def evidence_summary(evidence: dict[str, Any]) -> str:
    """The deciding numbers of one gate's ``evidence`` in one line ("" when it holds
    none that this knows how to show: then the gate's reason says it)."""
    e = evidence or {}
    if "metric" in e and "value" in e and e.get("value") is not None:
        return _threshold_summary(e)
    if "gap" in e and "metric" in e:
        return _fairness_summary(e)
    if "suite" in e:
        failures = e.get("failures") or []
        rows = f", {e['num_rows']:,} rows" if isinstance(e.get("num_rows"), int) else ""
        bad = f", {len(failures)} failed checks" if failures else ""
        return f"suite {e['suite']!r}{rows}{bad}"
    if e.get("run_id") and "datasets" in e:
        return f"run {str(e['run_id'])[:12]} <- {len(e['datasets'])} datasets"
    return ""


def version_number(version: int | str) -> str:
    """A version as gate results store it: ``"4"`` for ``4``, ``"4"`` or ``"04"``."""
    return str(int(version)) if str(version).isdigit() else str(version)


def recorded_gates(
    model_name: str, version: int | str, report: GateReport | None
) -> dict[str, Any]:
    """The JSON form of a version's recorded gates: what
    ``GET /api/v1/models/{name}/versions/{version}/gates`` answers and
    ``loopstack models gates --json`` prints. ``recorded`` is false (no results) when no
    evaluation was recorded on the version.

    >>> recorded_gates("fraud", 4, gate_report("fraud", 4))["failed_reasons"]
    """
    answer: dict[str, Any] = {"model": model_name, "version": version_number(version)}
    if report is None:
        return {**answer, "recorded": False, "passed": False, "results": [], "failed_reasons": []}
    return {**answer, "recorded": True, **report.to_dict()}
