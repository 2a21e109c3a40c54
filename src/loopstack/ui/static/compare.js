// Two or more runs side by side: each metric's history over steps in one chart (a line
// per run), the latest values, a parallel-coordinates view (parcoords.js), and the
// params with the rows that differ marked (and a switch to show only those).
// #/compare?experiment=<id>&runs=<run_id>,<run_id>,...
import { api, seg } from "./api.js";
import { lineChart } from "./chart.js";
import { h, number, replace } from "./dom.js";
import { parcoordsSection } from "./parcoords.js";

const MAX_RUNS = 100; // what one bulk history request takes
const CHARTED_UP_TO = 20; // metrics charted; the table keeps them all
const POINTS_PER_CHART = 2500;

function quote(value) {
  return `'${String(value).replace(/'/g, "''")}'`;
}

async function loadRuns(experimentId, runIds) {
  if (experimentId) {
    const found = await api("POST", "api/v1/runs/search", {
      experiment_ids: [experimentId],
      filter: `attributes.run_id IN (${runIds.map(quote).join(", ")})`,
      max_results: runIds.length,
    });
    const byId = new Map(found.runs.map((r) => [r.run_id, r]));
    if (runIds.every((id) => byId.has(id))) return runIds.map((id) => byId.get(id));
  }
  return Promise.all(runIds.map((id) => api("GET", `api/v1/runs/${seg(id)}`)));
}

// every charted metric's history in the runs, in one request: by key, then run, [step, value]
// (keys omitted: the server's first 20 in its order, which may differ from this page's)
async function histories(runIds, keys) {
  const { histories: got } = await api("POST", "api/v1/runs/metric-histories", {
    run_ids: runIds,
    max_points: POINTS_PER_CHART,
    ...(keys ? { keys } : {}),
  });
  const out = new Map();
  for (const [key, byRun] of Object.entries(got)) {
    out.set(key, new Map(runIds.map((id) => [id, (byRun[id] || []).map(([step, value]) =>
      [Number(step), typeof value === "number" ? value : Number.NaN])])));
  }
  return out;
}

function differs(values) {
  return new Set(values.map((v) => (v === undefined ? "\u0000none" : v))).size > 1;
}

export async function comparePage(root, route) {
  const experimentId = route.query.get("experiment") || "";
  const runIds = [...new Set((route.query.get("runs") || "").split(",").filter(Boolean))];
  if (runIds.length < 2 || runIds.length > MAX_RUNS) {
    replace(root, h("h1", {}, "Compare runs"), h("p", { class: "error", role: "alert" }, `Pick 2 to ${MAX_RUNS} runs to compare; got ${runIds.length}.`));
    return;
  }
  // the runs and the histories of their first metrics are asked for at once
  const [runs, byKey] = await Promise.all([loadRuns(experimentId, runIds), histories(runIds)]);
  const label = (r) => r.run_name || r.run_id.slice(0, 8);
  const runLink = (r) => h("a", { href: `#/experiments/${encodeURIComponent(r.experiment_id)}/runs/${encodeURIComponent(r.run_id)}` }, label(r));
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const charted = metricKeys.slice(0, CHARTED_UP_TO);
  const missing = charted.filter((k) => !byKey.has(k));
  if (missing.length) for (const [k, v] of await histories(runIds, missing)) byKey.set(k, v);
  const series = charted.map((k) => byKey.get(k));

  const headRow = h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", { "data-run-id": r.run_id }, runLink(r))));
  const paramRows = paramKeys.map((k) => {
    const values = runs.map((r) => r.params[k]);
    return h("tr", { class: differs(values) ? "differs" : "same", "data-key": k },
      h("th", { class: "mono" }, k), values.map((v) => h("td", {}, v ?? "")));
  });
  const metricRows = metricKeys.map((k) => {
    const values = runs.map((r) => r.metrics[k]);
    return h("tr", { class: differs(values) ? "differs" : "same", "data-key": k },
      h("th", { class: "mono" }, k), values.map((v) => h("td", { class: "num" }, number(v))));
  });
  const paramsTable = h("table", { id: "compare-params", class: "grid" }, h("thead", {}, headRow.cloneNode(true)), h("tbody", {}, paramRows));
  const onlyDiff = h("input", {
    type: "checkbox",
    id: "only-differences",
    onchange: () => paramsTable.classList.toggle("only-differences", onlyDiff.checked),
  });
  const nDiff = paramRows.filter((r) => r.classList.contains("differs")).length;
  const charts = h("div", { class: "charts", id: "compare-charts" });
  charted.forEach((k, i) => {
    const byRun = series[i];
    charts.append(lineChart(runs.map((r) => ({ name: label(r), points: byRun.get(r.run_id) || [] })), { title: k, width: 520, height: 260 }));
  });
  const first = runs[0];
  replace(
    root,
    h("p", { class: "crumbs" },
      h("a", { href: "#/" }, "Experiments"), " / ",
      h("a", { href: `#/experiments/${encodeURIComponent(experimentId || first.experiment_id)}` }, "runs"), " / compare"),
    h("h1", {}, `Compare ${runs.length} runs`),
    h("section", { id: "compare-metrics" },
      h("h2", {}, "Metrics"),
      metricKeys.length ? h("div", { class: "scroll" }, h("table", { class: "grid", id: "compare-latest" }, h("thead", {}, headRow.cloneNode(true)), h("tbody", {}, metricRows))) : h("p", { class: "muted" }, "No metrics."),
      metricKeys.length > CHARTED_UP_TO ? h("p", { class: "muted" }, `Charts of the first ${CHARTED_UP_TO} metrics.`) : null,
      charts),
    parcoordsSection(runs, { label }),
    h("section", { id: "compare-params-section" },
      h("h2", {}, "Parameters"),
      h("p", {}, h("label", {}, onlyDiff, ` show only the params that differ (${nDiff} of ${paramKeys.length})`)),
      paramKeys.length ? h("div", { class: "scroll" }, paramsTable) : h("p", { class: "muted" }, "No parameters.")),
  );
}
