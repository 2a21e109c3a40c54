// A lineage graph as SVG: the root in the middle, what it came from in columns to its
// left (by distance), what came from it to its right, an arrow per edge named by its
// relation. Runs and model versions link to their pages. Written here, no library.
import { svgElement as s } from "./chart.js";


const NODE_W = 190;
const NODE_H = 34;
const GAP_X = 70;
const GAP_Y = 18;

/** Each node's column: 0 for the root, -d for d steps upstream, +d downstream. */
export function columns(graph) {
  const col = { [graph.root]: 0 };
  const walk = (from, next, sign) => {
    let frontier = [from];
    for (let d = 1; frontier.length; d += 1) {
      const found = [];
      for (const node of frontier) {
        for (const other of next(node)) {
          if (!(other in col)) {
            col[other] = sign * d;
            found.push(other);
          }
        }
      }
      frontier = found;
    }
  };
  const edges = graph.edges || [];
  walk(graph.root, (n) => edges.filter((e) => e[1] === n).map((e) => e[0]), -1);
  walk(graph.root, (n) => edges.filter((e) => e[0] === n).map((e) => e[1]), 1);
  return col;
}

function href(node) {
  const [kind, rest] = [node.slice(0, node.indexOf(":")), node.slice(node.indexOf(":") + 1)];
  if (kind === "run") return `#/experiments/-/runs/${encodeURIComponent(rest)}`;
  if (kind === "model_version") return `#/models/${encodeURIComponent(rest.slice(0, rest.lastIndexOf("/")))}`;
  return null;
}

function caption(node, labels) {
  if (labels && labels[node]) return labels[node];
  const text = node.startsWith("run:") ? `run ${node.slice(4, 16)}` : node.replace(/^model_version:/, "model ").replace(/^dataset_version:/, "dataset ");
  return text.length > 28 ? `${text.slice(0, 27)}…` : text;
}

/** lineageGraph({root, edges, labels}) -> an <svg class="lineage">. */
export function lineageGraph(graph) {
  const col = columns(graph);
  const byCol = {};
  for (const [node, c] of Object.entries(col)) (byCol[c] = byCol[c] || []).push(node);
  const cols = Object.keys(byCol).map(Number).sort((a, b) => a - b);
  const rows = Math.max(...Object.values(byCol).map((ns) => ns.length));
  const width = cols.length * NODE_W + (cols.length - 1) * GAP_X + 20;
  const height = rows * NODE_H + (rows - 1) * GAP_Y + 20;
  const at = {};
  cols.forEach((c, i) => {
    const nodes = byCol[c].sort();
    const top = (height - (nodes.length * NODE_H + (nodes.length - 1) * GAP_Y)) / 2;
    nodes.forEach((n, j) => (at[n] = { x: 10 + i * (NODE_W + GAP_X), y: top + j * (NODE_H + GAP_Y) }));
  });
  const svg = s("svg", { class: "lineage", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `lineage of ${graph.root}` });
  svg.append(
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, s("path", { d: "M0,0L10,5L0,10z", fill: "#98a2b3" }))),
  );
  for (const [src, dst, relation] of graph.edges || []) {
    if (!at[src] || !at[dst]) continue;
    const [a, b] = [at[src], at[dst]];
    const forward = a.x < b.x;
    const x1 = forward ? a.x + NODE_W : a.x;
    const x2 = forward ? b.x : b.x + NODE_W;
    const [y1, y2] = [a.y + NODE_H / 2, b.y + NODE_H / 2];
    const mid = (x1 + x2) / 2;
    const edge = s("g", { class: "lineage-edge", "data-relation": relation });
    edge.append(s("path", { d: `M${x1},${y1}C${mid},${y1} ${mid},${y2} ${x2},${y2}`, fill: "none", stroke: "#98a2b3", "stroke-width": 1.5, "marker-end": "url(#arrow)" }));
    edge.append(s("text", { x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, relation));
    svg.append(edge);
  }
  for (const [node, p] of Object.entries(at)) {
    const g = s("g", { class: node === graph.root ? "lineage-node root" : "lineage-node", "data-node": node });
    g.append(s("title", {}, node));
    g.append(s("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 5 }));
    g.append(s("text", { x: p.x + NODE_W / 2, y: p.y + NODE_H / 2 + 4, "text-anchor": "middle" }, caption(node, graph.labels)));
    const link = href(node);
    if (link && node !== graph.root) {
      const a = s("a", { href: link });
      a.append(g);
      svg.append(a);
    } else svg.append(g);
  }
  return svg;
}
