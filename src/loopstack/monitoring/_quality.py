"""``quality(reference, current)``: production data quality from two profiles.

Per column: the null rate (current and reference), the share of values outside the
reference's [min, max] (from the underflow and overflow bins, exact when the reference
profile's edges span its own range, as ``profile`` of a table makes them), infinities,
values of a categorical column never seen in the reference (their count, share and the
most frequent few), and schema violations: columns missing in the current data, extra
columns, a changed kind or type, and types against an expected ``schema``.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from loopstack.errors import Invalid
from loopstack.monitoring._profile import (
    CATEGORICAL,
    NUMERIC,
    ColumnProfile,
    Profile,
    _class_of_dtype,
)

__all__ = ["ColumnQuality", "QualityReport", "quality"]

#: MLflow signature types and pandas/numpy dtype names -> the Arrow type class
_TYPE_CLASSES = {
    "double": "float",
    "float": "float",
    "float32": "float",
    "float64": "float",
    "long": "integer",
    "integer": "integer",
    "int": "integer",
    "int32": "integer",
    "int64": "integer",
    "boolean": "bool",
    "bool": "bool",
    "string": "string",
    "str": "string",
    "object": "string",
    "datetime": "timestamp",
    "datetime64[ns]": "timestamp",
    "datetime64[us]": "timestamp",
    "binary": "other",
}


@dataclass(frozen=True)
class ColumnQuality:
    """One column's quality figures; None where they do not apply."""

    column: str
    status: str  #: "ok", "missing_in_current", "extra_in_current", "kind_changed"
    kind: str
    dtype_reference: str | None = None
    dtype_current: str | None = None
    null_rate_reference: float | None = None
    null_rate_current: float | None = None
    out_of_range_share: float | None = None  #: below the reference min or above its max
    below_min: int | None = None
    above_max: int | None = None
    non_finite_share: float | None = None
    unseen_count: int | None = None  #: values outside the reference's categories
    unseen_share: float | None = None
    unseen_top: list[list[Any]] = field(default_factory=list)  #: [value, count], most first


@dataclass(frozen=True)
class QualityReport:
    """Per-column quality of the current data against the reference, and its ``issues``.

    >>> q = ls.monitoring.quality(ref_profile, window_profile, schema=signature)
    >>> [i["message"] for i in q.issues]
    >>> print(q.render())
    """

    num_rows_reference: int
    num_rows_current: int
    columns: list[ColumnQuality]
    issues: list[dict[str, Any]]  #: {"column", "kind", "value", "message"}

    def __getitem__(self, name: str) -> ColumnQuality:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    @property
    def ok(self) -> bool:
        """No issue found."""
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "num_rows_reference": self.num_rows_reference,
            "num_rows_current": self.num_rows_current,
            "columns": [asdict(c) for c in self.columns],
            "issues": [dict(i) for i in self.issues],
        }

    def to_frame(self) -> Any:
        """One row per column (pandas)."""
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.columns])

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(
            title=f"Data quality: {len(self.issues)} issue(s)",
            caption=f"{self.num_rows_current:,} current rows, "
            f"{self.num_rows_reference:,} reference",
            min_width=64,
        )
        table.add_column("column", overflow="fold", max_width=20)
        table.add_column("nulls ref → cur", justify="right")
        table.add_column("out of range", justify="right")
        table.add_column("unseen", justify="right")
        table.add_column("issues", overflow="fold", max_width=24)
        kinds: dict[str, list[str]] = {}
        for i in self.issues:
            short = _SHORT.get(str(i["kind"]), str(i["kind"]))
            kinds.setdefault(str(i["column"]), []).append(short)
        for c in self.columns:
            nulls = (
                f"{_pct(c.null_rate_reference)} → {_pct(c.null_rate_current)}"
                if c.status == "ok"
                else c.status.replace("_", " ")
            )
            table.add_row(
                c.column,
                nulls,
                _pct(c.out_of_range_share),
                _pct(c.unseen_share),
                ", ".join(kinds.get(c.column, [])) or "ok",
            )
        return table

    def render(self, width: int = 80) -> str:
        """The report as a text table that fits ``width`` columns."""
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=width, force_terminal=False, color_system=None).print(self)
        return buf.getvalue()


#: issue kinds as the table names them, to fit 80 columns
_SHORT = {
    "missing_column": "missing",
    "extra_column": "extra",
    "type_changed": "type",
    "schema_missing": "schema",
    "schema_type": "schema type",
    "null_rate": "nulls",
    "out_of_range": "range",
    "non_finite": "inf",
    "unseen_categories": "unseen",
}


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1%}"


def _schema_classes(schema: Any) -> dict[str, str]:
    """{column: type class} from an MLflow signature (dict or JSON) or {column: dtype}."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise Invalid(f"quality: 'schema' text is not JSON: {schema[:60]!r}") from exc
    if not isinstance(schema, dict):
        raise Invalid(
            "quality: 'schema' must be an MLflow signature dict ({'inputs': [{'name', "
            f"'type'}}, ...]}}) or {{column: dtype}}; got {type(schema).__name__} instead"
        )
    if "inputs" in schema:
        inputs = schema["inputs"]
        if isinstance(inputs, str):
            inputs = json.loads(inputs)
        if not isinstance(inputs, list) or not all(
            isinstance(i, dict) and "name" in i and "type" in i for i in inputs
        ):
            raise Invalid(
                "quality: a signature's 'inputs' must be a list of {'name', 'type'} "
                f"(column-based); got {str(inputs)[:80]!r}"
            )
        pairs = [(str(i["name"]), str(i["type"])) for i in inputs]
    else:
        pairs = [(str(k), str(v)) for k, v in schema.items()]
    out = {}
    for name, dtype in pairs:
        cls = _TYPE_CLASSES.get(dtype.lower()) or _class_of_dtype(dtype)
        out[name] = cls
    return out


def _fits(expected: str, got: str) -> bool:
    # an integer column where a float is expected converts safely (as MLflow allows)
    return expected == got or (expected == "float" and got == "integer") or got == "null"


def _numeric(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    if ref.edges is None or cur.edges is None or ref.min is None or not cur.counts.size:
        return {}
    below = 0 if cur.min is None or cur.min >= ref.min else int(cur.counts[0])
    above = 0 if cur.max is None or ref.max is None or cur.max <= ref.max else int(cur.counts[-1])
    return {
        "below_min": below,
        "above_max": above,
        "out_of_range_share": (below + above) / cur.finite if cur.finite else None,
        "non_finite_share": cur.non_finite / cur.count if cur.count else None,
    }


def _categorical(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    unseen = cur.other
    top = sorted(cur.other_top.items(), key=lambda kv: -kv[1])[:5]
    return {
        "unseen_count": unseen,
        "unseen_share": unseen / cur.count if cur.count else None,
        "unseen_top": [[v, c] for v, c in top],
    }


def quality(
    reference: Profile,
    current: Profile,
    *,
    schema: Any = None,
    null_rate_tolerance: float = 0.05,
    out_of_range_tolerance: float = 0.01,
    unseen_tolerance: float = 0.01,
) -> QualityReport:
    """Data quality of ``current`` against ``reference`` (both ``Profile``s).

    An issue is raised for a column missing in the current data, an extra column, a
    changed kind, a type that does not fit ``schema``, a null rate more than
    ``null_rate_tolerance`` above the reference's, an out-of-range share above
    ``out_of_range_tolerance``, unseen categories above ``unseen_tolerance`` of the
    values, infinities where the reference had none, and an empty current window.
    ``current`` should be profiled with ``like=reference``; a table given on either side
    (a DataFrame, an Arrow table, a dataset version) is profiled so (the reference first).

    >>> q = ls.monitoring.quality(ref, ls.monitoring.profile(window, like=ref))
    """
    from loopstack.monitoring._profiling import profile

    if not isinstance(reference, Profile) and reference is not None:
        reference = profile(reference)
    if not isinstance(current, Profile) and current is not None and isinstance(reference, Profile):
        current = profile(current, like=reference)
    for role, value in (("reference", reference), ("current", current)):
        if not isinstance(value, Profile):
            raise Invalid(
                f"quality: {role!r} must be a Profile (ls.monitoring.profile(...)); "
                f"got {type(value).__name__} instead"
            )
    expected = _schema_classes(schema) if schema is not None else {}
    issues: list[dict[str, Any]] = []

    def issue(column: str, kind: str, value: Any, message: str) -> None:
        issues.append({"column": column, "kind": kind, "value": value, "message": message})

    if current.num_rows == 0:
        issue("", "empty", 0, "the current data has no rows")
    rows: list[ColumnQuality] = []
    for name in dict.fromkeys([*reference.columns, *current.columns]):
        ref, cur = reference.columns.get(name), current.columns.get(name)
        if cur is None:
            assert ref is not None
            rows.append(ColumnQuality(name, "missing_in_current", ref.kind, ref.dtype))
            issue(name, "missing_column", None, f"{name!r} is in the reference, not current")
            continue
        if ref is None:
            rows.append(
                ColumnQuality(
                    name, "extra_in_current", cur.kind, None, cur.dtype, None, cur.null_rate
                )
            )
            issue(name, "extra_column", None, f"{name!r} is new: not in the reference")
            continue
        base: dict[str, Any] = {
            "column": name,
            "kind": cur.kind,
            "dtype_reference": ref.dtype,
            "dtype_current": cur.dtype,
            "null_rate_reference": ref.null_rate,
            "null_rate_current": cur.null_rate,
        }
        if ref.kind != cur.kind or ref.layout() != cur.layout():
            status = "kind_changed"
            what = f"{ref.kind} ({ref.dtype}) -> {cur.kind} ({cur.dtype})"
            if ref.kind == cur.kind:
                what = "a different layout; profile it with like=reference"
            issue(name, "type_changed", cur.dtype, f"{name!r} changed: {what}")
            rows.append(ColumnQuality(status=status, **base))
            continue
        extra = _numeric(ref, cur) if cur.kind == NUMERIC else {}
        if cur.kind == CATEGORICAL:
            extra = _categorical(ref, cur)
        row = ColumnQuality(status="ok", **base, **extra)
        rows.append(row)
        nr, nc = row.null_rate_reference or 0.0, row.null_rate_current or 0.0
        if nc - nr > null_rate_tolerance:
            issue(name, "null_rate", nc, f"{name!r}: null rate {nc:.1%} (reference {nr:.1%})")
        if (row.out_of_range_share or 0.0) > out_of_range_tolerance:
            issue(
                name,
                "out_of_range",
                row.out_of_range_share,
                f"{name!r}: {row.out_of_range_share:.1%} of values outside the reference's "
                f"[{ref.min:.4g}, {ref.max:.4g}]",
            )
        if cur.non_finite and not ref.non_finite:
            issue(name, "non_finite", cur.non_finite, f"{name!r}: {cur.non_finite} infinite values")
        if (row.unseen_share or 0.0) > unseen_tolerance:
            shown = ", ".join(repr(v) for v, _ in row.unseen_top[:3])
            note = " (beyond the reference's category list)" if ref.other else ""
            issue(
                name,
                "unseen_categories",
                row.unseen_share,
                f"{name!r}: {row.unseen_share:.1%} unseen values{note}, e.g. {shown}",
            )
    for name, cls in expected.items():
        cur = current.columns.get(name)
        if cur is None:
            issue(name, "schema_missing", cls, f"{name!r} is in the schema, not in the data")
            continue
        got = _class_of_dtype(cur.dtype)
        if not _fits(cls, got):
            issue(name, "schema_type", cur.dtype, f"{name!r}: schema says {cls}, data has {got}")
    return QualityReport(reference.num_rows, current.num_rows, rows, issues)
