"""``ColumnDrift`` and ``DriftReport``: what ``drift`` answers, as dicts, frames and a table."""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ColumnDrift", "DriftReport"]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the test, its statistic, p-value or score, and the verdict.

    ``status`` is ``"ok"`` when the column was compared; otherwise it says why not
    (``"missing_in_reference"``, ``"missing_in_current"``, ``"empty"``,
    ``"type_mismatch"``, ``"unsupported"``) and ``drifted`` is False.
    """

    column: str
    kind: str  #: "numeric" or "categorical" (or the column's dtype when unsupported)
    status: str
    test: str | None = None  #: "ks", "chi2", "psi", "wasserstein" or "jensenshannon"
    statistic: float | None = None  #: the test's statistic or the score
    p_value: float | None = None  #: raw p-value; None for score tests
    p_adjusted: float | None = None  #: after the correction across columns
    threshold: float | None = None  #: alpha for p-value tests, the score cut-off otherwise
    effect_size: float | None = None  #: Wasserstein / reference std, or total variation
    effect_measure: str | None = None  #: "wasserstein_sd" or "tv"
    min_effect: float | None = None  #: the effect the verdict needed; None: test alone
    drifted: bool = False
    n_reference: int = 0
    n_current: int = 0
    null_rate_reference: float | None = None
    null_rate_current: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  #: every statistic computed
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-able values (infinities become None)."""
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["metrics"] = {
            k: (v if isinstance(v, int) or math.isfinite(v) else None)
            for k, v in self.metrics.items()
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnDrift:
        """A column's drift from ``to_dict``'s shape (None metrics read back as NaN)."""
        values = dict(data)
        values["metrics"] = {
            k: (math.nan if v is None else v) for k, v in (values.get("metrics") or {}).items()
        }
        try:
            return cls(**values)
        except TypeError as exc:
            from loopstack.errors import Invalid

            raise Invalid(f"not a column drift: {exc}") from exc


def sort_key(c: ColumnDrift) -> tuple[int, int, float, str]:
    """Compared columns first, drifted first, then by effect size, largest first."""
    effect = c.effect_size if c.effect_size is not None else -1.0
    return (0 if c.status == "ok" else 1, 0 if c.drifted else 1, -effect, c.column)


@dataclass(frozen=True)
class DriftReport:
    """Per-column drift, sorted drifted-first then by effect size, and the dataset verdict.

    >>> report = ls.monitoring.drift(reference_df, current_df)
    >>> report.dataset_drift, report.drift_share
    >>> report.to_frame().head()
    """

    columns: list[ColumnDrift]
    drift_share: float  #: drifted columns / compared columns
    share_threshold: float
    dataset_drift: bool  #: drift_share >= share_threshold
    correction: str
    n_reference: int
    n_current: int

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns whose verdict is drift."""
        return [c.column for c in self.columns if c.drifted]

    def __getitem__(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "share_threshold": self.share_threshold,
            "correction": self.correction,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        """A report from ``to_dict``'s shape."""
        from loopstack.errors import Invalid

        if not isinstance(data, dict):
            raise Invalid(f"a drift report must be a mapping; got {type(data).__name__}")
        values = dict(data)
        values["columns"] = [ColumnDrift.from_dict(c) for c in values.get("columns") or []]
        try:
            return cls(**values)
        except TypeError as exc:
            raise Invalid(f"not a drift report: {exc}") from exc

    def _repr_html_(self) -> str:
        """Jupyter's inline rendering: the table sorted by effect, with an effect bar each."""
        from loopstack.monitoring._html import drift_section

        return drift_section(self, standalone=True)

    def to_frame(self) -> Any:
        """One row per column (pandas), in the report's order; ``metrics`` left out."""
        import pandas as pd

        rows = [{k: v for k, v in c.to_dict().items() if k != "metrics"} for c in self.columns]
        return pd.DataFrame(rows)

    def __rich__(self) -> Any:
        from rich.table import Table

        drifted = len(self.drifted_columns)
        verdict = (
            "dataset drift"
            if self.dataset_drift
            else f"{drifted} column(s) drifted"
            if drifted
            else "no drift"
        )
        table = Table(
            title=f"Drift: {verdict} ({self.drift_share:.0%} of columns; the dataset "
            f"drifts at {self.share_threshold:.0%})",
            caption=f"{self.n_reference:,} reference rows, {self.n_current:,} current; "
            f"p adjusted: {self.correction}",
            min_width=64,
        )
        table.add_column("column", overflow="fold", max_width=20)
        table.add_column("test")
        table.add_column("stat", justify="right")
        table.add_column("p adj", justify="right")
        table.add_column("effect", justify="right")
        table.add_column("verdict")
        for c in self.columns:
            if c.status != "ok":
                table.add_row(c.column, "-", "", "", "", c.status.replace("_", " "))
                continue
            effect = "" if c.effect_size is None else f"{c.effect_size:.3g} {_short(c)}"
            p = "" if c.p_adjusted is None else f"{c.p_adjusted:.2g}"
            table.add_row(
                c.column,
                c.test or "",
                f"{c.statistic:.3g}" if c.statistic is not None else "",
                p,
                effect,
                "[bold red]drift[/]" if c.drifted else "ok",
            )
        return table

    def render(self, width: int = 80) -> str:
        """The report as a text table that fits ``width`` columns (the CLI prints it)."""
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=width, force_terminal=False, color_system=None).print(self)
        return buf.getvalue()


def _short(c: ColumnDrift) -> str:
    return {"wasserstein_sd": "sd", "tv": "tv"}.get(c.effect_measure or "", "")
