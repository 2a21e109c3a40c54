"""Small inline SVG charts drawn in Python: no JavaScript, no external fetch.

Every chart is one ``<svg role="img">`` with a ``<title>`` and an ``aria-label``, its
marks as ``rect`` and ``path`` elements. Coordinates are rounded to one decimal so a
report of 50 features stays small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["bars", "effect_bar", "histogram", "lines"]

REF = "#8da0cb"  #: the reference's colour
CUR = "#fc8d62"  #: the current window's colour
LINE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def _f(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _open(width: int, height: int, title: str) -> str:
    t = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{t}"><title>{t}</title>'
    )


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.2g}"
    return f"{x:.4g}"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def histogram(
    edges: Sequence[float],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    title: str,
    width: int = 260,
    height: int = 120,
) -> str:
    """The reference (filled bars) against the current window (a step line), as shares
    of each side's total so samples of different sizes compare."""
    pad_l, pad_b, pad_t = 6, 16, 6
    w, h = width - 2 * pad_l, height - pad_b - pad_t
    n = len(edges) - 1
    rs, cs = sum(reference) or 1, sum(current) or 1
    ref = [c / rs for c in reference]
    cur = [c / cs for c in current]
    top = max(ref + cur + [1e-12])
    lo, hi = float(edges[0]), float(edges[-1])
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return pad_l + (float(v) - lo) / span * w

    def y(share: float) -> float:
        return pad_t + h - share / top * h

    parts = [_open(width, height, title)]
    for i in range(n):
        x0, x1 = x(edges[i]), x(edges[i + 1])
        if ref[i] > 0:
            parts.append(
                f'<rect class="ref" x="{_f(x0)}" y="{_f(y(ref[i]))}" '
                f'width="{_f(max(x1 - x0, 0.5))}" '
                f'height="{_f(max(pad_t + h - y(ref[i]), 0.5))}" fill="{REF}" fill-opacity="0.6"/>'
            )
    d = [f"M{_f(x(edges[0]))},{_f(y(0))}"]
    for i in range(n):
        d.append(f"L{_f(x(edges[i]))},{_f(y(cur[i]))}L{_f(x(edges[i + 1]))},{_f(y(cur[i]))}")
    d.append(f"L{_f(x(edges[-1]))},{_f(y(0))}")
    parts.append(
        f'<path class="cur" d="{"".join(d)}" fill="none" stroke="{CUR}" stroke-width="2"/>'
    )
    base = pad_t + h
    parts.append(
        f'<path class="axis" d="M{pad_l},{_f(base)}H{width - pad_l}" stroke="#888" '
        'stroke-width="1"/>'
        f'<text x="{pad_l}" y="{height - 3}" font-size="10">{escape(_num(lo))}</text>'
        f'<text x="{width - pad_l}" y="{height - 3}" font-size="10" text-anchor="end">'
        f"{escape(_num(hi))}</text></svg>"
    )
    return "".join(parts)


def bars(
    categories: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    title: str,
    width: int = 260,
) -> str:
    """Paired horizontal bars per category: the reference's share above the current's."""
    row, label_w, pad = 18, 90, 4
    height = pad * 2 + row * max(len(categories), 1)
    rs, cs = sum(reference) or 1, sum(current) or 1
    ref = [c / rs for c in reference]
    cur = [c / cs for c in current]
    top = max(ref + cur + [1e-12])
    w = width - label_w - pad * 2 - 34
    parts = [_open(width, height, title)]
    for i, cat in enumerate(categories):
        y0 = pad + i * row
        name = cat if len(cat) <= 14 else cat[:13] + "…"
        parts.append(
            f'<text x="{label_w - 4}" y="{y0 + 12}" font-size="10" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        for j, (share, colour, cls) in enumerate(((ref[i], REF, "ref"), (cur[i], CUR, "cur"))):
            bw = max(share / top * w, 0.5)
            parts.append(
                f'<rect class="{cls}" x="{label_w}" y="{y0 + 2 + j * 7}" width="{_f(bw)}" '
                f'height="6" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{_f(label_w + w + 4)}" y="{y0 + 12}" font-size="9">'
            f"{escape(f'{cur[i]:.0%}')}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def effect_bar(effect: float | None, limit: float, drifted: bool, *, title: str) -> str:
    """A tiny bar of one column's effect size against the largest in the table."""
    width, height = 80, 12
    share = 0.0 if effect is None or limit <= 0 else min(max(effect / limit, 0.0), 1.0)
    colour = "#d62728" if drifted else "#999"
    return (
        _open(width, height, title)
        + f'<rect x="0" y="2" width="{_f(max(share * width, 0.5))}" height="8" fill="{colour}"/>'
        + "</svg>"
    )


def lines(
    series: Sequence[dict],
    *,
    title: str,
    width: int = 560,
    height: int = 180,
) -> str:
    """Lines over time. Each series: ``name``, ``x`` (epoch seconds), ``y``; optional
    ``lower``/``upper`` (an interval drawn as a band) and ``points`` ([(x, y)], drawn as
    dots, e.g. realised values). A single point is drawn as a dot."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 8, 30
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    xs, ys = [], []
    for s in series:
        xs += _finite(s["x"]) + [p[0] for p in s.get("points", ())]
        ys += _finite(s["y"]) + _finite(s.get("lower", ())) + _finite(s.get("upper", ()))
        ys += _finite([p[1] for p in s.get("points", ())])
    parts = [_open(width, height, title)]
    if not xs or not ys:
        parts.append(f'<text x="{pad_l}" y="{height // 2}" font-size="11">no data</text></svg>')
        return "".join(parts)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) or 1) * 0.05, y1 + (abs(y1) or 1) * 0.05
    xspan = (x1 - x0) or 1.0

    def px(v: float) -> float:
        return pad_l + (w / 2 if x1 == x0 else (v - x0) / xspan * w)

    def py(v: float) -> float:
        return pad_t + h - (v - y0) / (y1 - y0) * h

    parts.append(
        f'<path class="axis" d="M{pad_l},{pad_t}V{pad_t + h}H{pad_l + w}" fill="none" '
        'stroke="#888" stroke-width="1"/>'
        f'<text x="{pad_l - 3}" y="{pad_t + 8}" font-size="10" text-anchor="end">'
        f"{escape(_num(y1))}</text>"
        f'<text x="{pad_l - 3}" y="{pad_t + h}" font-size="10" text-anchor="end">'
        f"{escape(_num(y0))}</text>"
    )
    for i, s in enumerate(series):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        pts = [
            (float(a), float(b))
            for a, b in zip(s["x"], s["y"], strict=True)
            if b is not None and math.isfinite(float(b))
        ]
        lower, upper = s.get("lower"), s.get("upper")
        if lower is not None and upper is not None:
            band = [
                (float(a), float(lo), float(hi))
                for a, lo, hi in zip(s["x"], lower, upper, strict=True)
                if lo is not None and hi is not None
            ]
            if band:
                d = "M" + "L".join(f"{_f(px(a))},{_f(py(hi))}" for a, _, hi in band)
                d += "L" + "L".join(f"{_f(px(a))},{_f(py(lo))}" for a, lo, _ in reversed(band))
                if len(band) == 1:  # one window: a short vertical bar
                    a, lo, hi = band[0]
                    d = (
                        f"M{_f(px(a) - 3)},{_f(py(hi))}H{_f(px(a) + 3)}V{_f(py(lo))}"
                        f"H{_f(px(a) - 3)}"
                    )
                parts.append(f'<path class="band" d="{d}Z" fill="{colour}" fill-opacity="0.2"/>')
        if len(pts) > 1:
            d = "M" + "L".join(f"{_f(px(a))},{_f(py(b))}" for a, b in pts)
            parts.append(
                f'<path class="line" d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        dots = list(s.get("points", ())) + (pts if len(pts) == 1 else [])
        for a, b in dots:
            if b is None:
                continue
            parts.append(
                f'<rect class="point" x="{_f(px(a) - 2.5)}" y="{_f(py(b) - 2.5)}" width="5" '
                f'height="5" fill="{colour}"/>'
            )
        legend_x = pad_l + i * 120
        parts.append(
            f'<rect x="{legend_x}" y="{height - 10}" width="10" height="4" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{height - 5}" font-size="10">'
            f"{escape(str(s['name'])[:18])}</text>"
        )
    from datetime import UTC, datetime

    for v, anchor in ((x0, "start"), (x1, "end")):
        label = datetime.fromtimestamp(v, tz=UTC).strftime("%m-%d %H:%M")
        parts.append(
            f'<text x="{_f(pad_l if anchor == "start" else pad_l + w)}" y="{pad_t + h + 12}" '
            f'font-size="10" text-anchor="{anchor}">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
