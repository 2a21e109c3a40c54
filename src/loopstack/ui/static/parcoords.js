// A parallel-coordinates view of runs: one vertical axis per chosen param or metric, one
// polyline per run across them, coloured by a chosen metric. Numeric axes span the
// values' range (a log scale when positive values spread over 3 decades or more, as
// learning rates do); other params are ordered categories. Hovering a line brings it
// to the front and names its run. Pure SVG, nothing fetched.
import { h, number, replace } from "./dom.js";
import { svgElement as s, ticks } from "./chart.js";

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NOT_FINITE = /^([+-]?(inf|infinity)|nan)$/i; // as the API writes metric values
const LOG_FROM = 1000; // hi / lo at which a positive axis turns logarithmic
const END_GAP = 0.08; // a tick nearer an end than this stands for it
const LABELS_UP_TO = 14; // categories named on an axis; more get every k-th
const collator = new Intl.Collator(undefined, { numeric: true });
// a sequential scale (viridis' stops): low values dark blue, high values yellow
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function asNumber(value) {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (NUMERIC.test(text)) return Number(text);
  if (NOT_FINITE.test(text)) return text.toLowerCase() === "nan" ? Number.NaN : text.startsWith("-") ? -Infinity : Infinity;
  return null;
}

/**
 * The scale of one axis from its values (undefined for a run without the key):
 * {kind: "linear"|"log", lo, hi} when every present value is a number (metric values
 * that are not finite, NaN and infinities, are left out), else
 * {kind: "categorical", categories: [...]} in natural order ("2" before "10").
 */
export function axisScale(values) {
  const present = values.filter((v) => v !== undefined && v !== null && v !== "");
  const nums = present.map(asNumber);
  if (present.length && nums.every((n) => n !== null)) {
    const finite = nums.filter((n) => Number.isFinite(n));
    if (finite.length === 0) return { kind: "linear", lo: 0, hi: 0 };
    const lo = Math.min(...finite);
    const hi = Math.max(...finite);
    return { kind: lo > 0 && hi / lo >= LOG_FROM ? "log" : "linear", lo, hi };
  }
  const categories = [...new Set(present.map(String))].sort(collator.compare);
  return { kind: "categorical", categories };
}

/** Where a value sits on its axis: 0 at the bottom, 1 at the top; null when it has no
 * place there (missing, not finite, not one of the categories). A one-value axis puts
 * it in the middle. */
export function position(scale, value) {
  if (value === undefined || value === null) return null;
  if (scale.kind === "categorical") {
    const i = scale.categories.indexOf(String(value));
    if (i === -1) return null;
    return scale.categories.length === 1 ? 0.5 : i / (scale.categories.length - 1);
  }
  const n = asNumber(value);
  if (n === null || !Number.isFinite(n)) return null;
  if (scale.hi === scale.lo) return n === scale.lo ? 0.5 : null;
  if (scale.kind === "log") return (Math.log10(n) - Math.log10(scale.lo)) / (Math.log10(scale.hi) - Math.log10(scale.lo));
  return (n - scale.lo) / (scale.hi - scale.lo);
}

/** The values labelled on an axis: [[value, position], ...]. */
export function axisTicks(scale) {
  if (scale.kind === "categorical") {
    const step = Math.ceil(scale.categories.length / LABELS_UP_TO);
    return scale.categories.filter((_, i) => i % step === 0).map((c) => [c, position(scale, c)]);
  }
  if (scale.hi === scale.lo) return [[scale.lo, 0.5]];
  if (scale.kind === "log") {
    const out = [];
    for (let e = Math.ceil(Math.log10(scale.lo) - 1e-9); e <= Math.floor(Math.log10(scale.hi) + 1e-9); e += 1) {
      out.push([Number(`1e${e}`), position(scale, Number(`1e${e}`))]);
    }
    return out;
  }
  // round ticks, and the ends of the range where no tick is near them
  const out = ticks(scale.lo, scale.hi, 4).map((t) => [t, position(scale, t)]);
  if (!out.some(([, t]) => t < END_GAP)) out.unshift([scale.lo, 0]);
  if (!out.some(([, t]) => t > 1 - END_GAP)) out.push([scale.hi, 1]);
  return out;
}

function differs(values) {
  return new Set(values.map((v) => (v === undefined ? "\u0000none" : String(v)))).size > 1;
}

/** The axes shown first: the params whose values differ between the runs, then every
 * metric (its latest value), each as {kind: "params"|"metrics", key}. */
export function defaultAxes(runs) {
  const keys = (field) => [...new Set(runs.flatMap((r) => Object.keys(r[field] || {})))].sort();
  return [
    ...keys("params").filter((k) => differs(runs.map((r) => r.params[k]))).map((key) => ({ kind: "params", key })),
    ...keys("metrics").map((key) => ({ kind: "metrics", key })),
  ];
}

/** The colour of a fraction in [0, 1] on the sequential ramp, as "rgb(r,g,b)"; grey for
 * null (a run without the colouring metric). */
export function rampColor(t) {
  if (t === null || t === undefined || !Number.isFinite(t)) return "rgb(160,160,160)";
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const c = RAMP[i].map((a, j) => Math.round(a + (RAMP[i + 1][j] - a) * f));
  return `rgb(${c.join(",")})`;
}

function shortText(text, up) {
  const t = String(text);
  return t.length > up ? `${t.slice(0, up - 1)}…` : t;
}

/**
 * parallelCoordinates(runs, {axes, colorBy, label}) -> an <svg class="parcoords">: an
 * axis per {kind, key} of axes, a <g class="pc-run" data-run-id> per run holding its
 * polyline (broken where the run has no value on an axis), coloured by the metric
 * colorBy (or "" for one colour).
 */
export function parallelCoordinates(runs, { axes, colorBy = "", label = (r) => r.run_id, height = 380 } = {}) {
  const m = { left: 60, right: 70, top: 46, bottom: 46 };
  const gap = axes.length > 1 ? Math.max(90, Math.min(160, 1100 / (axes.length - 1))) : 0;
  const width = m.left + m.right + gap * Math.max(0, axes.length - 1) + 40;
  const plotH = height - m.top - m.bottom;
  const svg = s("svg", { class: "parcoords", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "parallel coordinates" });
  svg.append(s("title", {}, `${runs.length} runs over ${axes.length} axes`));
  const X = (i) => m.left + 20 + i * gap;
  const Y = (t) => m.top + plotH * (1 - t);
  const scales = axes.map((a) => axisScale(runs.map((r) => (r[a.kind] || {})[a.key])));
  const colorScale = colorBy ? axisScale(runs.map((r) => r.metrics[colorBy])) : null;
  const colorOf = (r) => (colorScale ? rampColor(position(colorScale, r.metrics[colorBy])) : "#1f77b4");

  const lines = s("g", { class: "pc-lines" });
  for (const run of runs) {
    let d = "";
    let pen = false;
    axes.forEach((a, i) => {
      const t = position(scales[i], (run[a.kind] || {})[a.key]);
      if (t === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${X(i).toFixed(1)},${Y(t).toFixed(1)}`;
      pen = true;
    });
    const g = s("g", { class: "pc-run", "data-run-id": run.run_id, "data-name": label(run) });
    const color = colorOf(run);
    g.append(
      s("path", { class: "pc-line", d: d || "M0,0", fill: "none", stroke: color, "stroke-width": 1.5 }),
      s("path", { class: "pc-hit", d: d || "M0,0", fill: "none", stroke: "transparent", "stroke-width": 7 }, s("title", {}, label(run))),
    );
    lines.append(g);
  }
  svg.append(lines);

  axes.forEach((a, i) => {
    const axis = s("g", { class: "pc-axis", "data-kind": a.kind, "data-key": a.key, "data-scale": scales[i].kind, "pointer-events": "none" });
    axis.append(s("line", { x1: X(i), y1: Y(0), x2: X(i), y2: Y(1) }));
    for (const [value, t] of axisTicks(scales[i])) {
      axis.append(s("line", { x1: X(i) - 4, y1: Y(t), x2: X(i), y2: Y(t) }));
      const text = typeof value === "number" ? number(value) : shortText(value, 14);
      axis.append(s("text", { x: X(i) - 6, y: Y(t) + 4, "text-anchor": "end", class: "pc-tick" }, text));
    }
    const name = s("text", { x: X(i), y: m.top - 24, "text-anchor": "middle", class: "pc-name", "pointer-events": "auto" }, shortText(a.key, 16));
    name.append(s("title", {}, `${a.kind}.${a.key}`));
    axis.append(name, s("text", { x: X(i), y: m.top - 11, "text-anchor": "middle", class: "pc-kind" }, a.kind === "params" ? "param" : "metric"));
    svg.append(axis);
  });

  // the hovered run: its line drawn again on top, thicker, and its name below the plot
  const front = s("g", { class: "pc-front", "pointer-events": "none" });
  const hover = s("text", { x: m.left, y: height - 14, class: "pc-hover", id: "parcoords-hover" }, "");
  svg.append(front, hover);
  lines.addEventListener("mouseover", (e) => {
    const g = e.target.closest("g.pc-run");
    if (!g) return;
    const run = runs.find((r) => r.run_id === g.dataset.runId);
    const line = g.querySelector(".pc-line").cloneNode(false);
    line.setAttribute("class", "pc-highlight");
    line.setAttribute("stroke-width", 3.5);
    front.replaceChildren(line);
    svg.classList.add("pc-hovering");
    for (const other of lines.querySelectorAll("g.pc-active")) other.classList.remove("pc-active");
    g.classList.add("pc-active");
    hover.textContent = colorBy && run ? `${g.dataset.name} — ${colorBy} ${number(run.metrics[colorBy])}` : g.dataset.name;
  });
  lines.addEventListener("mouseleave", () => {
    front.replaceChildren();
    svg.classList.remove("pc-hovering");
    for (const other of lines.querySelectorAll("g.pc-active")) other.classList.remove("pc-active");
    hover.textContent = "";
  });

  if (colorScale && colorScale.kind !== "categorical") {
    const lx = width - m.right + 20;
    const legend = s("g", { class: "pc-legend" });
    const steps = 24;
    for (let k = 0; k < steps; k += 1) {
      legend.append(s("rect", { x: lx, y: Y((k + 1) / steps), width: 10, height: plotH / steps + 0.5, fill: rampColor((k + 0.5) / steps) }));
    }
    legend.append(
      s("text", { x: lx + 5, y: Y(1) - 6, "text-anchor": "middle" }, number(colorScale.hi)),
      s("text", { x: lx + 5, y: Y(0) + 14, "text-anchor": "middle" }, number(colorScale.lo)),
    );
    svg.append(legend);
  }
  return svg;
}

/** The compare page's section: the chart, a choice of its axes (the default ones
 * checked) and of the metric that colours the lines. */
export function parcoordsSection(runs, { label }) {
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const chosen = new Set(defaultAxes(runs).map((a) => `${a.kind}\u0000${a.key}`));
  const holder = h("div", { class: "scroll", id: "parcoords" });
  const colorBy = h(
    "select",
    { id: "parcoords-color", "aria-label": "colour lines by", onchange: () => draw() },
    h("option", { value: "" }, "(one colour)"),
    metricKeys.map((k, i) => h("option", { value: k, selected: i === 0 }, k)),
  );
  const box = (kind, key) =>
    h("label", { class: "pc-choice" },
      h("input", {
        type: "checkbox",
        "data-kind": kind,
        "data-key": key,
        checked: chosen.has(`${kind}\u0000${key}`),
        onchange: (e) => {
          if (e.target.checked) chosen.add(`${kind}\u0000${key}`);
          else chosen.delete(`${kind}\u0000${key}`);
          draw();
        },
      }),
      ` ${key}`);
  const draw = () => {
    // in the order of the lists: params, then metrics, each sorted by key
    const axes = [
      ...paramKeys.filter((k) => chosen.has(`params\u0000${k}`)).map((key) => ({ kind: "params", key })),
      ...metricKeys.filter((k) => chosen.has(`metrics\u0000${k}`)).map((key) => ({ kind: "metrics", key })),
    ];
    replace(
      holder,
      axes.length ? parallelCoordinates(runs, { axes, colorBy: colorBy.value, label }) : h("p", { class: "muted" }, "Pick at least one axis."),
    );
  };
  draw();
  return h(
    "section",
    { id: "compare-parcoords" },
    h("h2", {}, "Parallel coordinates"),
    h("div", { class: "pc-controls" },
      h("label", {}, "Colour by ", colorBy),
      h("details", { id: "parcoords-axes" },
        h("summary", {}, "Axes"),
        paramKeys.length ? h("fieldset", {}, h("legend", {}, "Params"), paramKeys.map((k) => box("params", k))) : null,
        metricKeys.length ? h("fieldset", {}, h("legend", {}, "Metrics"), metricKeys.map((k) => box("metrics", k))) : null)),
    holder,
  );
}
