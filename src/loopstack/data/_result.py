"""The outcome of one check."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CheckResult"]


@dataclass
class CheckResult:
    """One check's verdict: what was expected, what was observed, and who broke it."""

    check: str  #: the check type, e.g. ``"null_rate"``
    name: str  #: the check with its column, e.g. ``"null_rate(age)"``
    column: str | None
    passed: bool
    observed: Any
    expected: Any
    #: rows breaking a row-level check (None for table-level checks)
    failing_count: int | None = None
    #: up to a few of those rows, as dicts
    failing_rows: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**data)
