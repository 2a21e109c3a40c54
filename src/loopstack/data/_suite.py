"""A validation suite: named checks that serialise to JSON and validate any table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.data import _drift  # noqa: F401  (registers the comparison checks)
from loopstack.data._checks import CHECKS, Check, check_from_dict
from loopstack.data._engine import run_checks
from loopstack.data._report import ValidationReport
from loopstack.errors import Invalid, NotFound

if TYPE_CHECKING:
    from loopstack.data._store import DatasetBackend

__all__ = ["Suite"]


@dataclass
class Suite:
    """Checks to run over a table.

    >>> suite = Suite("orders", [{"type": "null_rate", "column": "id", "max": 0}])
    >>> suite.validate(df).raise_for_failures()
    """

    name: str
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise Invalid(
                f"a suite needs a non-empty name; got {self.name!r} instead", field="name"
            )
        if not isinstance(self.checks, list | tuple):
            raise Invalid(
                f"a suite's checks must be a list; got {type(self.checks).__name__}", field="checks"
            )
        self.checks = [c if isinstance(c, Check) else check_from_dict(c) for c in self.checks]

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: Any) -> Suite:
        if not isinstance(data, dict) or "checks" not in data:
            raise Invalid(
                "a suite must be a mapping with 'name' and 'checks'; got "
                f"{type(data).__name__} {str(data)[:60]!r}",
                field="suite",
            )
        return cls(str(data.get("name") or "suite"), list(data["checks"] or []))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Suite:
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"no suite file at {str(path)!r}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Invalid(
                f"the suite file {str(path)!r} is not valid JSON: {exc}", field="suite"
            ) from exc
        return cls.from_dict(data)

    @staticmethod
    def check_types() -> list[str]:
        return sorted(CHECKS)

    # -- running --------------------------------------------------------------------------
    def validate(
        self,
        data: Any,
        *,
        record: bool = True,
        run_id: str | None = None,
        store: DatasetBackend | None = None,
    ) -> ValidationReport:
        """Run every check over ``data`` (a DataFrame, Arrow table, path or dataset version).

        With ``record`` (the default) the result is stored, audited, and gets a
        ``result_id`` that promotion evidence can point at; ``run_id`` defaults to the
        active run's.
        """
        from loopstack._progress import phases
        from loopstack.data._sources import to_arrow

        dataset = None
        if hasattr(data, "digest") and hasattr(data, "version") and hasattr(data, "to_arrow"):
            dataset = f"{data.name}/{data.version}"
        title = f"validating {dataset or 'data'} against suite {self.name}"
        with phases(title, ("reading", f"{len(self.checks)} checks", "recording")) as step:
            step("reading")
            table = to_arrow(data)
            step(f"{len(self.checks)} checks")
            results, num_rows = run_checks(self.checks, table)
            report = ValidationReport(
                self.name, results, num_rows, dataset, suite_definition=self.to_dict()
            )
            if record:
                step("recording")
                if store is None:
                    from loopstack.data._client import dataset_store

                    store = dataset_store()
                if run_id is None:
                    run_id = _active_run_id()
                store.save_validation(report, run_id=run_id)
        return report


def _active_run_id() -> str | None:
    import sys

    fluent = sys.modules.get("loopstack.tracking._fluent")
    run = fluent.active_run() if fluent is not None else None
    return run.run_id if run is not None else None
