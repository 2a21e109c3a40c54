"""The report's performance, estimate, quality and KPI sections from an ``Observation``
(``observe``): the rows ``MonitoringReport`` draws."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopstack.monitoring._monitor import Observation

__all__ = ["observed_sections"]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def observed_sections(obs: Observation, kpis: Any) -> dict[str, list[dict[str, Any]]]:
    """``performance``, ``estimated``, ``quality`` and ``kpis`` rows of ``obs``; ``kpis``
    is ``read_kpis``'s frame for the window."""
    performance: list[dict[str, Any]] = []
    if obs.performance is not None:
        for r in obs.performance.rows:
            for m in obs.performance.metrics:
                if _finite(r.get(m)):
                    performance.append(
                        {
                            "window_start": r["window_start"],
                            "segment": r.get("segment"),
                            "metric": m,
                            "value": float(r[m]),
                            "n": r.get("labelled"),
                            "label_coverage": r.get("label_coverage"),
                        }
                    )
    estimated: list[dict[str, Any]] = []
    if obs.estimated is not None:
        realised: dict[tuple[Any, str], Any] = {}
        if obs.performance is not None:
            for _, c in obs.estimated.compare(obs.performance).iterrows():
                realised[(c["window_start"], c["metric"])] = c["realised"]
        for r in obs.estimated.rows:
            for m in obs.estimated.metrics:
                if not _finite(r.get(m)):
                    continue
                got = realised.get((r["window_start"], m))
                estimated.append(
                    {
                        "window_start": r["window_start"],
                        "metric": m,
                        "estimate": float(r[m]),
                        "lower": r.get(f"{m}_lower"),
                        "upper": r.get(f"{m}_upper"),
                        "realised": float(got) if got is not None and _finite(got) else None,
                    }
                )
    quality: list[dict[str, Any]] = []
    if obs.quality is not None:
        by_column: dict[str, list[str]] = {}
        for issue in obs.quality.issues:
            by_column.setdefault(str(issue.get("column")), []).append(str(issue.get("message")))
        for c in obs.quality.columns:
            quality.append(
                {
                    "column": c.column,
                    "null_rate": c.null_rate_current,
                    "null_rate_reference": c.null_rate_reference,
                    "out_of_range": c.out_of_range_share,
                    "unseen": c.unseen_share,
                    "issues": by_column.get(c.column, []),
                }
            )
    points = [
        {"ts": r["ts"], "name": str(r["name"]), "value": float(r["value"])}
        for r in (kpis.to_dict("records") if len(kpis) else [])
    ]
    return {"performance": performance, "estimated": estimated, "quality": quality, "kpis": points}
