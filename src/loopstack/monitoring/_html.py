"""A ``MonitoringReport`` as one self-contained HTML file: inline CSS and SVG, no script,
no external fetch; every text escaped.

Sections: alerts, the drift table sorted by effect (drifted rows highlighted), each
feature's reference against current distribution, performance and its estimate over
time beside the KPIs, data quality, volume.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from html import escape
from typing import TYPE_CHECKING, Any

from loopstack.monitoring import _svg

if TYPE_CHECKING:
    from loopstack.monitoring._monitor_report import MonitoringReport
    from loopstack.monitoring._report import DriftReport

__all__ = ["drift_section", "report_body", "report_html"]

CSS = (
    ".lsr{font:13px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;"
    "color:#222;max-width:1200px}"
    ".lsr h1{font-size:20px;margin:8px 0}"
    ".lsr h2{font-size:16px;margin:20px 0 6px;border-bottom:1px solid #ddd}"
    ".lsr table{border-collapse:collapse;margin:4px 0}"
    ".lsr th,.lsr td{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}"
    ".lsr td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".lsr tr.drift td{background:#fde0dd}"
    ".lsr tr.firing td{background:#fde0dd}"
    ".lsr .grid{display:flex;flex-wrap:wrap;gap:10px}"
    ".lsr figure{margin:0;border:1px solid #eee;padding:4px}"
    ".lsr figcaption{font-size:12px;font-weight:600}"
    ".lsr .muted{color:#777}"
    ".lsr .key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}"
    ".lsr .verdict{font-weight:700}"
    ".lsr .bad{color:#c0392b}"
    ".lsr .ok{color:#27ae60}"
    ".lsr .warn{color:#d35400}"
)


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.{digits}g}"
    return _e(value)


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return _e(value)


def _ts(value: Any) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def _table(headers: list[str], rows: list[tuple[str, list[str]]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for cls, cells in rows:
        tds = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        body.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def drift_section(report: DriftReport, *, standalone: bool = False) -> str:
    """The drift table, sorted by effect size (drifted rows highlighted), each row with a
    small bar of its effect; ``standalone`` wraps it with the CSS (Jupyter)."""
    compared = [c for c in report.columns if c.status == "ok"]
    drifted = sum(1 for c in compared if c.drifted)
    verdict, cls = (
        ("dataset drift", "bad")
        if report.dataset_drift
        else ("columns drifted", "warn")
        if drifted
        else ("no drift", "ok")
    )
    others = [c for c in report.columns if c.status != "ok"]
    compared.sort(key=lambda c: (-(c.effect_size or 0.0), c.column))
    limit = max([c.effect_size or 0.0 for c in compared] + [1e-12])
    rows = []
    for c in compared + others:
        if c.status != "ok":
            rows.append(("", [_e(c.column), _e(c.kind), "", "", "", "", "", _e(c.status)]))
            continue
        bar = _svg.effect_bar(
            c.effect_size, limit, c.drifted, title=f"{c.column}: effect {c.effect_size or 0:.3g}"
        )
        rows.append(
            (
                "drift" if c.drifted else "",
                [
                    _e(c.column),
                    _e(c.kind),
                    _e(c.test),
                    _num(c.statistic),
                    _num(c.p_adjusted, 2),
                    f"{_num(c.effect_size)} {_e(c.effect_measure or '')}",
                    bar,
                    "<b>drift</b>" if c.drifted else "ok",
                ],
            )
        )
    summary = (
        f'<p><span class="verdict {cls}">{verdict}</span>: {drifted} of {len(compared)} '
        f"compared columns drifted ({report.drift_share:.0%}; the dataset drifts at "
        f"{report.share_threshold:.0%}); "
        f"{report.n_reference:,} reference rows, {report.n_current:,} current; p adjusted by "
        f"{_e(report.correction)}.</p>"
    )
    table = _table(
        ["column", "kind", "test", "statistic", "p adj", "effect", "", "verdict"],
        rows,
        {3, 4, 5},
    )
    body = summary + table
    if standalone:
        return f'<div class="lsr"><style>{CSS}</style>{body}</div>'
    return body


def _distributions(report: MonitoringReport) -> str:
    order: dict[str, int] = {}
    drifted: set[str] = set()
    if report.drift is not None:
        ranked = sorted(report.drift.columns, key=lambda c: -(c.effect_size or 0.0))
        order = {c.column: i for i, c in enumerate(ranked)}
        drifted = set(report.drift.drifted_columns)
    figures = []
    for d in sorted(report.distributions, key=lambda d: (order.get(d.column, 1 << 30), d.column)):
        title = f"{d.column}: reference against current distribution"
        if d.kind == "numeric":
            chart = _svg.histogram(d.edges or [], d.reference, d.current, title=title)
        else:
            chart = _svg.bars(d.categories or [], d.reference, d.current, title=title)
        nulls = ""
        if d.nulls_reference or d.nulls_current:
            nulls = f" <span class='muted'>nulls {d.nulls_reference:,} / {d.nulls_current:,}</span>"
        mark = " <span class='bad'>drift</span>" if d.column in drifted else ""
        figures.append(
            f"<figure><figcaption>{_e(d.column)}{mark}{nulls}</figcaption>{chart}</figure>"
        )
    key = (
        f'<p class="key"><span style="background:{_svg.REF}"></span>reference'
        f'<span style="background:{_svg.CUR}"></span>current</p>'
    )
    return key + f'<div class="grid">{"".join(figures)}</div>'


def _performance(report: MonitoringReport) -> str:
    charts = []
    by_metric: dict[str, dict[str, list[tuple[float, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in report.performance:
        segment = r.get("segment") or "all"
        by_metric[str(r.get("metric"))][str(segment)].append(
            (_ts(r["window_start"]), r.get("value"))
        )
    est: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in report.estimated:
        est[str(r.get("metric"))].append(r)
    for metric in sorted(set(by_metric) | set(est)):
        series: list[dict[str, Any]] = []
        for segment, pts in sorted(by_metric.get(metric, {}).items()):
            pts.sort(key=lambda p: p[0])
            series.append({"name": segment, "x": [p[0] for p in pts], "y": [p[1] for p in pts]})
        rows = sorted(est.get(metric, []), key=lambda r: _ts(r["window_start"]))
        if rows:
            xs = [_ts(r["window_start"]) for r in rows]
            series.append(
                {
                    "name": "estimated",
                    "x": xs,
                    "y": [r.get("estimate") for r in rows],
                    "lower": [r.get("lower") for r in rows],
                    "upper": [r.get("upper") for r in rows],
                    "points": [
                        (x, r["realised"])
                        for x, r in zip(xs, rows, strict=True)
                        if r.get("realised") is not None
                    ],
                }
            )
        charts.append(
            f"<figure><figcaption>{_e(metric)}</figcaption>"
            f"{_svg.lines(series, title=f'{metric} over time')}</figure>"
        )
    kpis: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for r in report.kpis:
        kpis[str(r.get("name"))].append((_ts(r["ts"]), r.get("value")))
    for name, pts in sorted(kpis.items()):
        pts.sort(key=lambda p: p[0])
        series = [{"name": name, "x": [p[0] for p in pts], "y": [p[1] for p in pts]}]
        charts.append(
            f"<figure><figcaption>KPI {_e(name)}</figcaption>"
            f"{_svg.lines(series, title=f'KPI {name} over time', width=400)}</figure>"
        )
    return f'<div class="grid">{"".join(charts)}</div>'


def _quality(report: MonitoringReport) -> str:
    rows = []
    for r in report.quality:
        issues = r.get("issues") or []
        text = ", ".join(map(str, issues)) if isinstance(issues, list | tuple) else str(issues)
        unseen = r.get("unseen")
        if isinstance(unseen, list | tuple):
            unseen = ", ".join(map(str, unseen[:10])) + (" …" if len(unseen) > 10 else "")
        rows.append(
            (
                "drift" if issues else "",
                [
                    _e(r.get("column")),
                    _num(r.get("null_rate")),
                    _num(r.get("null_rate_reference")),
                    _num(r.get("out_of_range")),
                    _e(unseen),
                    _e(text),
                ],
            )
        )
    return _table(
        ["column", "null rate", "null rate (ref)", "out of range", "unseen", "issues"],
        rows,
        {1, 2, 3},
    )


def _volume(report: MonitoringReport) -> str:
    rows = sorted(report.volume, key=lambda r: _ts(r["window_start"]))
    xs = [_ts(r["window_start"]) for r in rows]
    series = [{"name": "requests", "x": xs, "y": [r.get("requests") for r in rows]}]
    if any(r.get("rows") is not None for r in rows):
        series.append({"name": "rows", "x": xs, "y": [r.get("rows") for r in rows]})
    if any(r.get("errors") is not None for r in rows):
        series.append({"name": "errors", "x": xs, "y": [r.get("errors") for r in rows]})
    return _svg.lines(series, title="volume over time (requests, rows per window)", width=760)


def _alerts(report: MonitoringReport) -> str:
    rows = [
        (
            "firing" if a.get("state") == "firing" else "",
            [
                _e(a.get("rule")),
                _e(a.get("severity")),
                _e(a.get("state")),
                _when(a.get("first_seen")),
                _when(a.get("last_seen")),
                _e(a.get("message")),
            ],
        )
        for a in report.alerts
    ]
    return _table(["rule", "severity", "state", "first seen", "last seen", "message"], rows, set())


def report_body(report: MonitoringReport) -> str:
    """The report's HTML without the document around it (Jupyter shows this inline)."""
    firing = sum(1 for a in report.alerts if a.get("state") == "firing")
    parts = [
        f"<h1>Monitoring: {_e(report.endpoint)}</h1>",
        f"<p>Window {_when(report.window_start)} to {_when(report.window_end)} UTC; "
        f"generated {_when(report.generated_at)} UTC. "
        f"{len(report.alerts)} alert(s), {firing} firing.</p>",
    ]
    if report.alerts:
        parts += ["<h2>Alerts</h2>", _alerts(report)]
    if report.drift is not None:
        parts += ["<h2>Drift</h2>", drift_section(report.drift)]
    if report.distributions:
        parts += ["<h2>Distributions</h2>", _distributions(report)]
    if report.performance or report.estimated or report.kpis:
        parts += ["<h2>Performance and KPIs</h2>", _performance(report)]
    if report.quality:
        parts += ["<h2>Data quality</h2>", _quality(report)]
    if report.volume:
        parts += ["<h2>Volume</h2>", _volume(report)]
    return f'<div class="lsr"><style>{CSS}</style>{"".join(parts)}</div>'


def report_html(report: MonitoringReport) -> str:
    """The report as a whole HTML document: works offline, no script."""
    title = f"loopstack monitoring: {report.endpoint}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title></head><body>{report_body(report)}</body></html>\n"
    )
