"""A suite's verdict on one table: every check's result, printable and usable as a gate."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loopstack.data._result import CheckResult
from loopstack.errors import ValidationFailed

__all__ = ["ValidationReport"]


def _brief(value: Any, limit: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ValidationReport:
    """Every check of a suite with passed/failed, observed value and expectation.

    >>> report = suite.validate(df)
    >>> report.raise_for_failures()   # the pipeline gate
    """

    suite: str
    results: list[CheckResult]
    num_rows: int
    dataset: str | None = None  #: ``name/version`` when a dataset version was validated
    result_id: str | None = None  #: set once the result is stored
    created_at: int = 0
    suite_definition: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def __bool__(self) -> bool:
        return self.passed

    def raise_for_failures(self) -> ValidationReport:
        """Raise ``ValidationFailed`` naming every failing check; return self when all passed."""
        failures = self.failures
        if failures:
            lines = "; ".join(f"{r.name}: {r.message or _brief(r.observed)}" for r in failures)
            target = f" on {self.dataset}" if self.dataset else ""
            raise ValidationFailed(
                f"validation suite {self.suite!r}{target} failed {len(failures)} of "
                f"{len(self.results)} checks: {lines}",
                field="data",
            )
        return self

    def as_evidence(self) -> dict[str, Any]:
        """JSON-able evidence for ``request_promotion(evidence={"validation": ...})``."""
        return {
            "suite": self.suite,
            "passed": self.passed,
            "result_id": self.result_id,
            "dataset": self.dataset,
            "num_rows": self.num_rows,
            "failures": [
                {
                    "check": r.name,
                    "column": r.column,
                    "observed": r.observed,
                    "expected": r.expected,
                    "message": r.message,
                }
                for r in self.failures
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "num_rows": self.num_rows,
            "dataset": self.dataset,
            "result_id": self.result_id,
            "created_at": self.created_at,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """The report ``to_dict()`` (plus an optional ``suite_definition``) describes."""
        return cls(
            str(data["suite"]),
            [CheckResult.from_dict(r) for r in data.get("results") or []],
            int(data.get("num_rows") or 0),
            data.get("dataset"),
            data.get("result_id"),
            int(data.get("created_at") or 0),
            dict(data.get("suite_definition") or {}),
        )

    def to_wire(self) -> dict[str, Any]:
        """``to_dict()`` with the suite's definition, JSON-safe (what the server stores)."""
        return json.loads(
            json.dumps({**self.to_dict(), "suite_definition": self.suite_definition}, default=str)
        )

    def summary(self) -> str:
        return (
            f"{self.suite}: {'passed' if self.passed else 'FAILED'} "
            f"({len(self.results) - len(self.failures)}/{len(self.results)} checks, "
            f"{self.num_rows:,} rows)"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        for r in self.results:
            mark = "✓" if r.passed else "✗"
            lines.append(
                f"  {mark} {r.name}: observed {_brief(r.observed)}"
                + ("" if r.passed else f" — {r.message}")
            )
        return "\n".join(lines)

    def table(self) -> Any:
        """A rich table of every check (✓/✗, observed, expected, failing rows)."""
        from rich.table import Table

        t = Table(title=self.summary(), title_justify="left")
        for col in ("", "check", "observed", "expected", "failing rows"):
            t.add_column(col, overflow="fold")
        for r in self.results:
            t.add_row(
                "[green]✓[/]" if r.passed else "[red]✗[/]",
                r.name,
                _brief(r.observed),
                _brief(r.expected),
                "" if r.passed or not r.failing_count else f"{r.failing_count:,}",
            )
        return t

    def __rich__(self) -> Any:
        return self.table()
