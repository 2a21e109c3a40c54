// A column's profile drawn small, from what the dataset's stored profile holds: a
// histogram of a number column's bins, the most frequent values of a category column as
// bars. Inline SVG (no library); each bar's <title> says its range or value and count.
import { svgElement as s } from "./chart.js";
import { number } from "./dom.js";

const TOP_SHOWN = 8; // category bars drawn; the rest are counted in a note

/** What to draw of a column's profile: {kind: "histogram" | "top", bars: [{label, count}],
 * more} or null when the profile has neither (timestamps, all-null columns). */
export function profileBars(column) {
  if (column && column.histogram && column.histogram.counts.length) {
    const { edges, counts } = column.histogram;
    const bars = counts.map((count, i) => ({ label: `${number(edges[i])} to ${number(edges[i + 1])}`, count }));
    return { kind: "histogram", bars, more: 0 };
  }
  if (column && column.top && column.top.length) {
    const bars = column.top.slice(0, TOP_SHOWN).map((t) => ({ label: String(t.value), count: t.count }));
    return { kind: "top", bars, more: column.top.length - bars.length };
  }
  return null;
}

function histogram(name, column, bars, width, height) {
  const pad = { left: 4, right: 4, top: 4, bottom: 16 };
  const peak = Math.max(1, ...bars.map((b) => b.count));
  const w = (width - pad.left - pad.right) / bars.length;
  const inner = height - pad.top - pad.bottom;
  const svg = s("svg", { class: "profile-plot histogram", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${name}: histogram` });
  bars.forEach((b, i) => {
    const bh = (b.count / peak) * inner;
    const rect = s("rect", { class: "bar", x: pad.left + i * w + 0.5, y: pad.top + inner - bh, width: Math.max(1, w - 1), height: bh });
    rect.append(s("title", {}, `${b.label}: ${b.count}`));
    svg.append(rect);
  });
  const { edges } = column.histogram;
  const y = height - 4;
  svg.append(s("text", { x: pad.left, y, "text-anchor": "start" }, number(edges[0])));
  svg.append(s("text", { x: width - pad.right, y, "text-anchor": "end" }, number(edges[edges.length - 1])));
  return svg;
}

function topValues(name, bars, more, width) {
  const row = 14;
  const labelWidth = 80;
  const height = bars.length * row + (more ? row : 0) + 4;
  const peak = Math.max(1, ...bars.map((b) => b.count));
  const room = width - labelWidth - 40;
  const svg = s("svg", { class: "profile-plot top-values", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${name}: top values` });
  bars.forEach((b, i) => {
    const y = 2 + i * row;
    const text = b.label.length > 12 ? `${b.label.slice(0, 11)}…` : b.label;
    svg.append(s("text", { x: labelWidth - 4, y: y + 10, "text-anchor": "end" }, text));
    const rect = s("rect", { class: "bar", x: labelWidth, y: y + 1, width: Math.max(1, (b.count / peak) * room), height: row - 3 });
    rect.append(s("title", {}, `${b.label}: ${b.count}`));
    svg.append(rect);
    svg.append(s("text", { x: labelWidth + (b.count / peak) * room + 4, y: y + 10 }, String(b.count)));
  });
  if (more) svg.append(s("text", { x: labelWidth, y: 2 + bars.length * row + 10 }, `and ${more} more`));
  return svg;
}

/** A small plot of one column's profile (an <svg class="profile-plot">), or null. */
export function profilePlot(name, column, { width = 240, height = 70 } = {}) {
  const drawn = profileBars(column);
  if (!drawn) return null;
  return drawn.kind === "histogram" ? histogram(name, column, drawn.bars, width, height) : topValues(name, drawn.bars, drawn.more, width);
}
