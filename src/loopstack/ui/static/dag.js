// A pipeline run's graph as SVG: steps in columns by depth (a step one column right of
// the deepest step it takes an output from), each box coloured by the step's status in
// the run, an arrow per data flow named by the parameter it feeds. Written here, no library.
import { svgElement as s } from "./chart.js";

const NODE_W = 176;
const NODE_H = 46;
const GAP_X = 80;
const GAP_Y = 22;

/** A step's status as the colour class of its box: succeeded, failed, running, cached,
 * pending or skipped. */
export function statusClass(status) {
  switch (String(status || "").toUpperCase()) {
    case "FINISHED":
      return "succeeded";
    case "FAILED":
      return "failed";
    case "RUNNING":
    case "RETRYING":
      return "running";
    case "CACHED":
    case "REUSED":
      return "cached";
    case "SKIPPED":
      return "skipped";
    default:
      return "pending";
  }
}

/** The step an input label ("load", "split.train") comes from: the longest step name
 * that is the label or its prefix before a ".". */
function producer(label, names) {
  let best = null;
  for (const n of names) {
    if ((label === n || label.startsWith(`${n}.`)) && (best === null || n.length > best.length)) best = n;
  }
  return best;
}

/**
 * dagLayout({nodes: [{name, inputs: {param: label}}]}) ->
 *   {columns: {name: depth}, rows: {name: row}, edges: [[from, to, param]]}
 * Depth 0 for a step that takes no step's output; rows in a column follow the mean row of
 * the steps they take from (then the graph's order), so edges cross less.
 */
export function dagLayout(graph) {
  const nodes = (graph && graph.nodes) || [];
  const names = nodes.map((n) => n.name);
  const edges = [];
  for (const node of nodes) {
    for (const [param, label] of Object.entries(node.inputs || {})) {
      const from = producer(String(label), names);
      if (from !== null && from !== node.name) edges.push([from, node.name, param]);
    }
  }
  const columns = {};
  const visiting = new Set();
  const depth = (name) => {
    if (name in columns) return columns[name];
    if (visiting.has(name)) return 0; // a cycle cannot be stored, but never loop on one
    visiting.add(name);
    const ups = edges.filter((e) => e[1] === name).map((e) => depth(e[0]));
    columns[name] = ups.length ? Math.max(...ups) + 1 : 0;
    return columns[name];
  };
  names.forEach(depth);
  const rows = {};
  const byColumn = {};
  for (const n of names) (byColumn[columns[n]] = byColumn[columns[n]] || []).push(n);
  for (const c of Object.keys(byColumn).map(Number).sort((a, b) => a - b)) {
    const order = names.indexOf.bind(names);
    const weight = (n) => {
      const ups = edges.filter((e) => e[1] === n && e[0] in rows).map((e) => rows[e[0]]);
      return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : order(n);
    };
    byColumn[c].sort((a, b) => weight(a) - weight(b) || order(a) - order(b)).forEach((n, i) => (rows[n] = i));
  }
  return { columns, rows, edges };
}

/** dagGraph(graph, steps) -> an <svg class="dag">; steps maps a step's name to its record
 * ({status, attempts, ...}). */
export function dagGraph(graph, steps = {}) {
  const { columns, rows, edges } = dagLayout(graph);
  const names = Object.keys(columns);
  const cols = names.length ? Math.max(...Object.values(columns)) + 1 : 1;
  const perCol = {};
  for (const n of names) perCol[columns[n]] = (perCol[columns[n]] || 0) + 1;
  const maxRows = Math.max(1, ...Object.values(perCol));
  const width = cols * NODE_W + (cols - 1) * GAP_X + 24;
  const height = maxRows * NODE_H + (maxRows - 1) * GAP_Y + 24;
  const at = {};
  for (const n of names) {
    const count = perCol[columns[n]];
    const top = (height - (count * NODE_H + (count - 1) * GAP_Y)) / 2;
    at[n] = { x: 12 + columns[n] * (NODE_W + GAP_X), y: top + rows[n] * (NODE_H + GAP_Y) };
  }
  const svg = s("svg", { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "pipeline graph" });
  svg.append(
    s("defs", {}, s("marker", { id: "dag-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, s("path", { d: "M0,0L10,5L0,10z", fill: "#98a2b3" }))),
  );
  for (const [from, to, param] of edges) {
    const [a, b] = [at[from], at[to]];
    const [x1, y1, x2, y2] = [a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2];
    const mid = (x1 + x2) / 2;
    const g = s("g", { class: "dag-edge", "data-from": from, "data-to": to, "data-param": param });
    g.append(s("path", { d: `M${x1},${y1}C${mid},${y1} ${mid},${y2} ${x2},${y2}`, fill: "none", "marker-end": "url(#dag-arrow)" }));
    g.append(s("text", { x: mid, y: (y1 + y2) / 2 - 5, "text-anchor": "middle" }, param));
    svg.append(g);
  }
  for (const n of names) {
    const step = steps[n] || {};
    const kind = statusClass(step.status);
    const p = at[n];
    const g = s("g", { class: `dag-node ${kind}`, "data-step": n, "data-status": kind });
    g.append(s("title", {}, `${n}: ${step.status || "not recorded"}`));
    g.append(s("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6 }));
    const caption = n.length > 24 ? `${n.slice(0, 23)}…` : n;
    g.append(s("text", { x: p.x + NODE_W / 2, y: p.y + 19, "text-anchor": "middle", class: "dag-name" }, caption));
    g.append(s("text", { x: p.x + NODE_W / 2, y: p.y + 35, "text-anchor": "middle", class: "dag-status" }, kind));
    svg.append(g);
  }
  return svg;
}
