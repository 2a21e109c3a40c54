// A small SVG line chart (a metric over steps), written here rather than vendored: axes
// with round ticks, one path per series, a marker per point when there are few, and a
// legend when there is more than one series. No library, nothing fetched.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const MARKERS_UP_TO = 40; // points per series that still get a circle each
const LEGEND_UP_TO = 12; // series named in a legend; more are told apart by hovering

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** An SVG element: svgElement("rect", {x: 1}, child, "text"). */
export { s as svgElement };

/** Round tick values covering [lo, hi]: about `count` of them, at 1, 2 or 5 x 10^k. */
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  // the round step whose number of ticks comes nearest to count (a tie: the larger)
  const step = [10, 5, 2, 1]
    .map((m) => m * mag)
    .reduce((best, st) => (Math.abs((hi - lo) / st - count) < Math.abs((hi - lo) / best - count) ? st : best));
  // whole multiples of the step, rounded to its decimals: 0 stays 0, not 3.5e-18
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k <= Math.floor(hi / step + 1e-9); k += 1) {
    out.push(Number((k * step).toFixed(decimals)) || 0);
  }
  return out;
}

function label(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/**
 * lineChart([{name: "acc", points: [[step, value], ...]}], {title}) -> an <svg class="chart">.
 * Values that are not finite numbers (NaN, infinities) are left out of the line.
 * xDomain / yDomain ([lo, hi]) widen an axis to at least that range (a time window
 * with few points in it, a share from 0 to 1).
 */
export function lineChart(series, { title = "", width = 460, height = 220, xLabel = "step", xDomain = null, yDomain = null } = {}) {
  const clean = series.map((sr) => ({
    name: sr.name,
    points: sr.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
      .sort((a, b) => a[0] - b[0]),
  }));
  const all = clean.flatMap((sr) => sr.points);
  const legendRows = clean.length > 1 && clean.length <= LEGEND_UP_TO ? clean.length : 0;
  const m = { left: 56, right: 12, top: 22 };
  const full = height + (legendRows ? 16 * legendRows + 8 : 0);
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${full}`,
    width,
    height: full,
    role: "img",
    "aria-label": title,
  });
  svg.append(s("title", {}, title));
  svg.append(s("text", { x: m.left, y: 14, class: "chart-title" }, title));
  const plotH = height - 22 - 34;
  const plotW = width - m.left - m.right;
  if (all.length === 0) {
    svg.append(s("text", { x: m.left, y: m.top + plotH / 2, class: "chart-empty" }, "no finite values"));
    return svg;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0]), ...(xDomain || [])), Math.max(...all.map((p) => p[0]), ...(xDomain || []))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1]), ...(yDomain || [])), Math.max(...all.map((p) => p[1]), ...(yDomain || []))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) {
    const pad = Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - pad, y1 + pad];
  } else {
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * plotW;
  const Y = (y) => m.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const axis = s("g", { class: "chart-axis" });
  axis.append(s("line", { x1: m.left, y1: m.top + plotH, x2: m.left + plotW, y2: m.top + plotH }));
  axis.append(s("line", { x1: m.left, y1: m.top, x2: m.left, y2: m.top + plotH }));
  for (const t of ticks(y0, y1, 4)) {
    axis.append(s("line", { x1: m.left, y1: Y(t), x2: m.left + plotW, y2: Y(t), class: "chart-grid" }));
    axis.append(s("text", { x: m.left - 6, y: Y(t) + 4, "text-anchor": "end" }, label(t)));
  }
  const integral = all.every((p) => Number.isInteger(p[0]));
  for (const t of ticks(x0, x1, 5)) {
    if (integral && !Number.isInteger(t)) continue;
    axis.append(s("text", { x: X(t), y: m.top + plotH + 16, "text-anchor": "middle" }, label(t)));
  }
  axis.append(s("text", { x: m.left + plotW / 2, y: m.top + plotH + 30, "text-anchor": "middle" }, xLabel));
  svg.append(axis);
  clean.forEach((sr, i) => {
    const color = PALETTE[i % PALETTE.length];
    const g = s("g", { class: "chart-series", "data-series": sr.name });
    if (sr.points.length > 1) {
      const d = sr.points.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
      g.append(s("path", { d, fill: "none", stroke: color, "stroke-width": 2 }, s("title", {}, sr.name)));
    }
    if (sr.points.length <= MARKERS_UP_TO) {
      for (const [x, y] of sr.points) {
        const dot = s("circle", { cx: X(x).toFixed(1), cy: Y(y).toFixed(1), r: 3, fill: color });
        dot.append(s("title", {}, `${sr.name} — ${xLabel} ${x}: ${label(y)}`));
        g.append(dot);
      }
    }
    svg.append(g);
    if (legendRows) {
      const ly = height + 12 + 16 * i;
      svg.append(s("rect", { x: m.left, y: ly - 9, width: 10, height: 10, fill: color }));
      svg.append(s("text", { x: m.left + 16, y: ly, class: "chart-legend" }, sr.name));
    }
  });
  return svg;
}
