"""``MonitoringReport``: one endpoint's window of monitoring as plain data, to JSON and HTML.

The report holds what was computed elsewhere (drift, distributions, performance and
its estimate, KPIs, quality, volume, alerts) as dataclasses and lists of dicts, so it
round-trips through JSON (``to_dict`` / ``from_dict``) and renders as one
self-contained HTML file (``to_html``; inline SVG, no script, no external fetch) or
inline in Jupyter (``_repr_html_``).

>>> report = MonitoringReport("churn", start, end, drift=ls.monitoring.drift(ref, cur),
...                           distributions=feature_distributions(ref, cur))   # doctest: +SKIP
>>> report.write("report.html")                                         # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid
from loopstack.monitoring._report import DriftReport

__all__ = ["FeatureDistribution", "MonitoringReport", "feature_distributions"]

#: keys of the series' rows that hold a point in time (normalized to aware UTC datetimes)
TIME_KEYS = ("window_start", "window_end", "ts", "first_seen", "last_seen")
KINDS = ("numeric", "categorical")


def as_time(value: Any, name: str) -> dt.datetime:
    """An aware UTC datetime from a datetime (naive: UTC), pandas Timestamp, numpy
    datetime64, epoch seconds or ISO-8601 text."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if hasattr(value, "to_pydatetime"):
        return as_time(value.to_pydatetime(), name)
    if type(value).__name__ == "datetime64":
        import numpy as np

        return as_time(float(value.astype("datetime64[us]").astype(np.int64)) / 1e6, name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    if isinstance(value, str):
        try:
            return as_time(dt.datetime.fromisoformat(value.replace("Z", "+00:00")), name)
        except ValueError:
            pass
    raise Invalid(
        f"{name!r} must be a datetime, epoch seconds or ISO-8601 text; got {value!r} instead",
        field=name,
    )


def _plain(value: Any, key: str = "") -> Any:
    """JSON-able data: numpy scalars to Python, non-finite floats to None, times to ISO."""
    if key in TIME_KEYS and value is not None:
        return as_time(value, key).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows(value: Any, name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(r, dict) for r in value):
        raise Invalid(f"{name!r} must be a list of dicts; got {type(value).__name__} instead")
    out = []
    for r in value:
        row = {}
        for k, v in r.items():
            row[str(k)] = as_time(v, f"{name}.{k}") if k in TIME_KEYS and v is not None else v
        out.append(row)
    return out


@dataclass(frozen=True)
class FeatureDistribution:
    """One feature's reference and current distribution over shared bins.

    Numeric: ``edges`` (len n+1) and counts per bin (len n). Categorical:
    ``categories`` and counts per category. ``nulls_*`` count the missing values.
    """

    column: str
    kind: str  #: "numeric" or "categorical"
    reference: list[float]
    current: list[float]
    edges: list[float] | None = None
    categories: list[str] | None = None
    nulls_reference: int = 0
    nulls_current: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise Invalid(
                f"a distribution's 'kind' must be one of {', '.join(KINDS)}; got "
                f"{self.kind!r} instead",
                field="kind",
            )
        n = len(self.reference)
        if len(self.current) != n:
            raise Invalid(
                f"distribution {self.column!r}: reference and current need as many counts; "
                f"got {n} and {len(self.current)}"
            )
        if self.kind == "numeric" and (self.edges is None or len(self.edges) != n + 1):
            raise Invalid(
                f"numeric distribution {self.column!r} needs {n + 1} bin edges for {n} counts; "
                f"got {None if self.edges is None else len(self.edges)}"
            )
        if self.kind == "categorical" and (self.categories is None or len(self.categories) != n):
            raise Invalid(
                f"categorical distribution {self.column!r} needs {n} categories for {n} "
                f"counts; got {None if self.categories is None else len(self.categories)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The distribution as plain JSON-able values."""
        return _plain(
            {
                "column": self.column,
                "kind": self.kind,
                "edges": self.edges,
                "categories": self.categories,
                "reference": list(self.reference),
                "current": list(self.current),
                "nulls_reference": self.nulls_reference,
                "nulls_current": self.nulls_current,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureDistribution:
        """A distribution from ``to_dict``'s shape."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise Invalid(f"not a feature distribution: {exc}") from exc


def feature_distributions(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    bins: int = 20,
    max_categories: int = 12,
    max_categories_numeric: int = 20,
) -> list[FeatureDistribution]:
    """Each shared column's distribution in ``reference`` and ``current`` (DataFrames or
    pyarrow Tables) over the same bins: ``bins`` equal-width bins over both sides' range
    for numbers, the ``max_categories`` most frequent categories (the rest as
    ``(other)``) otherwise. An integer column with few values counts as categorical, as
    in ``drift``."""
    import numpy as np
    import pandas as pd

    from loopstack.monitoring._drift import _as_frame

    ref, cur = _as_frame(reference, "reference"), _as_frame(current, "current")
    names = columns if columns is not None else [c for c in ref.columns if c in cur.columns]
    out = []
    for name in names:
        a, b = ref[name], cur[name]
        nulls = int(a.isna().sum()), int(b.isna().sum())
        numeric = (
            pd.api.types.is_numeric_dtype(a.dtype)
            and not pd.api.types.is_bool_dtype(a.dtype)
            and pd.api.types.is_numeric_dtype(b.dtype)
        )
        if numeric and pd.api.types.is_integer_dtype(a.dtype):
            numeric = a.nunique(dropna=True) > max_categories_numeric
        if numeric:
            va = a.to_numpy(dtype=float, na_value=np.nan)
            vb = b.to_numpy(dtype=float, na_value=np.nan)
            va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
            both = np.concatenate([va, vb])
            if both.size == 0:
                continue
            lo, hi = float(both.min()), float(both.max())
            if lo == hi:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            out.append(
                FeatureDistribution(
                    str(name),
                    "numeric",
                    reference=[int(c) for c in np.histogram(va, edges)[0]],
                    current=[int(c) for c in np.histogram(vb, edges)[0]],
                    edges=[float(e) for e in edges],
                    nulls_reference=nulls[0],
                    nulls_current=nulls[1],
                )
            )
            continue
        try:
            rc = a.dropna().astype(str).value_counts()
            cc = b.dropna().astype(str).value_counts()
        except TypeError:
            continue
        total = rc.add(cc, fill_value=0).sort_values(ascending=False, kind="stable")
        top = [str(c) for c in total.index[:max_categories]]
        ref_counts: list[float] = [int(rc.get(c, 0)) for c in top]
        cur_counts: list[float] = [int(cc.get(c, 0)) for c in top]
        if len(total) > max_categories:
            top.append("(other)")
            ref_counts.append(int(rc.sum()) - sum(ref_counts))
            cur_counts.append(int(cc.sum()) - sum(cur_counts))
        out.append(
            FeatureDistribution(
                str(name),
                "categorical",
                reference=ref_counts,
                current=cur_counts,
                categories=top,
                nulls_reference=nulls[0],
                nulls_current=nulls[1],
            )
        )
    return out


@dataclass
class MonitoringReport:
    """One endpoint over one window: drift, distributions, performance, KPIs, quality,
    volume and alerts, as plain data.

    The series are lists of dicts: ``performance`` rows (window_start, segment, metric,
    value, n, label_coverage); ``estimated`` (window_start, metric, estimate, lower,
    upper, realised or None); ``kpis`` (ts, name, value); ``quality`` (column,
    null_rate, null_rate_reference, out_of_range, unseen, issues); ``volume``
    (window_start, requests, rows, errors optional); ``alerts`` (rule, severity, state,
    first_seen, last_seen, message). Times may be given as datetimes, epoch seconds or
    ISO text; they are kept as aware UTC datetimes.

    >>> MonitoringReport("churn", start, end, drift=report).write("churn.html")  # doctest: +SKIP
    """

    endpoint: str
    window_start: Any
    window_end: Any
    generated_at: Any = None
    drift: DriftReport | None = None
    distributions: list[FeatureDistribution] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    estimated: list[dict[str, Any]] = field(default_factory=list)
    kpis: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)
    volume: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint, str) or not self.endpoint:
            raise Invalid(
                f"'endpoint' must be a non-empty string; got {self.endpoint!r} instead",
                field="endpoint",
            )
        self.window_start = as_time(self.window_start, "window_start")
        self.window_end = as_time(self.window_end, "window_end")
        self.generated_at = as_time(
            self.generated_at if self.generated_at is not None else dt.datetime.now(dt.UTC),
            "generated_at",
        )
        if self.drift is not None and not isinstance(self.drift, DriftReport):
            raise Invalid(
                f"'drift' must be a DriftReport or None; got {type(self.drift).__name__} instead",
                field="drift",
            )
        if not all(isinstance(d, FeatureDistribution) for d in self.distributions):
            raise Invalid("'distributions' must be a list of FeatureDistribution")
        for name in ("performance", "estimated", "kpis", "quality", "volume", "alerts"):
            setattr(self, name, _rows(getattr(self, name), name))

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values (times as ISO-8601 UTC text)."""

        def iso(t: dt.datetime) -> str:
            return t.isoformat().replace("+00:00", "Z")

        return {
            "endpoint": self.endpoint,
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
            "generated_at": iso(self.generated_at),
            "drift": None if self.drift is None else self.drift.to_dict(),
            "distributions": [d.to_dict() for d in self.distributions],
            **{
                name: _plain(getattr(self, name))
                for name in ("performance", "estimated", "kpis", "quality", "volume", "alerts")
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringReport:
        """A report from ``to_dict``'s shape (or its JSON, parsed)."""
        if not isinstance(data, dict):
            raise Invalid(f"a monitoring report must be a mapping; got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise Invalid(f"unknown monitoring report keys {unknown}; expected {sorted(known)}")
        values = dict(data)
        if values.get("drift") is not None:
            values["drift"] = DriftReport.from_dict(values["drift"])
        values["distributions"] = [
            FeatureDistribution.from_dict(d) for d in values.get("distributions") or []
        ]
        try:
            return cls(**values)
        except TypeError as exc:
            raise Invalid(f"not a monitoring report: {exc}") from exc

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_html(self) -> str:
        """The report as one self-contained HTML document (inline CSS and SVG; no script,
        nothing fetched)."""
        from loopstack.monitoring._html import report_html

        return report_html(self)

    def _repr_html_(self) -> str:
        from loopstack.monitoring._html import report_body

        return report_body(self)

    def write(self, path: str | Path, format: str = "html") -> Path:
        """Write the report to ``path`` as ``"html"`` or ``"json"``; returns the path."""
        if format not in ("html", "json"):
            raise Invalid(
                f"the 'format' parameter must be 'html' or 'json'; got {format!r} instead",
                field="format",
            )
        target = Path(path)
        text = self.to_html() if format == "html" else self.to_json()
        target.write_text(text, encoding="utf-8")
        return target
