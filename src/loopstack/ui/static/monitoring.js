// An endpoint's monitoring (#/deployments/<name>/monitoring?window=7d): the server's
// report of the prediction log over the window against the training data of the
// version the endpoint serves: drift per feature (largest effect first), each feature's
// distribution (reference beside current) and the alerts.
import { api, seg } from "./api.js";
import { lineChart } from "./chart.js";
import { h, number, replace, table } from "./dom.js";

const WINDOWS = ["1h", "24h", "7d", "30d"];

/** Drifted columns first, then by effect size (largest first; none last), then name. */
export function byEffect(columns) {
  const effect = (c) => (typeof c.effect_size === "number" ? c.effect_size : -Infinity);
  return [...columns].sort(
    (a, b) => Number(b.drifted) - Number(a.drifted) || effect(b) - effect(a) || a.column.localeCompare(b.column),
  );
}

function shares(counts) {
  const total = counts.reduce((s, c) => s + c, 0) || 1;
  return counts.map((c) => c / total);
}

/** A feature's reference and current distributions: a line each over the bins' centres
 * (numbers), or their shares per category (a table). */
function distributionPlot(dist) {
  if (dist.kind === "numeric") {
    const centres = dist.edges.slice(0, -1).map((e, i) => (e + dist.edges[i + 1]) / 2);
    const line = (counts) => shares(counts).map((v, i) => [centres[i], v]);
    return lineChart(
      [
        { name: "reference", points: line(dist.reference) },
        { name: "current", points: line(dist.current) },
      ],
      { title: dist.column, xLabel: `${dist.column} (share of rows per bin)`, width: 420, height: 200 },
    );
  }
  const [ref, cur] = [shares(dist.reference), shares(dist.current)];
  return h(
    "figure",
    { class: "categorical", "aria-label": dist.column },
    h("figcaption", {}, dist.column),
    table(
      ["Category", "Reference", "Current"],
      dist.categories.map((c, i) => [c, `${(ref[i] * 100).toFixed(1)} %`, `${(cur[i] * 100).toFixed(1)} %`]),
      { class: "grid" },
    ),
  );
}

function driftTable(columns) {
  const rows = byEffect(columns).map((c) =>
    h(
      "tr",
      { "data-column": c.column, class: c.drifted ? "drifted" : "" },
      h("td", {}, c.column),
      h("td", {}, c.kind),
      h("td", { class: c.drifted ? "status failed" : "status finished" }, c.status !== "ok" ? c.status : c.drifted ? "drifted" : "no drift"),
      h("td", {}, c.test || ""),
      h("td", { class: "num" }, number(c.statistic)),
      h("td", { class: "num" }, number(c.p_adjusted)),
      h("td", { class: "num" }, number(c.effect_size)),
      h("td", {}, c.effect_measure || ""),
      h("td", { class: "num" }, `${c.n_reference} / ${c.n_current}`),
    ),
  );
  return table(["Feature", "Kind", "Verdict", "Test", "Statistic", "p (adjusted)", "Effect", "Measure", "Rows (ref / cur)"], rows, {
    id: "drift-table",
    class: "grid",
  });
}

function alertsTable(alerts) {
  const rows = alerts.map((a) =>
    h(
      "tr",
      { "data-rule": a.rule, class: a.state },
      h("td", {}, a.rule),
      h("td", { class: a.state === "firing" ? "status failed" : "status finished" }, a.state),
      h("td", {}, a.severity || ""),
      h("td", {}, a.message || ""),
      h("td", {}, a.first_seen || ""),
      h("td", {}, a.last_seen || ""),
    ),
  );
  return table(["Rule", "State", "Severity", "Message", "First seen", "Last seen"], rows, { id: "alerts", class: "grid" });
}

/** Charts of the window over time: the traffic, each realised metric (a line per
 * segment) and each estimated one (the estimate beside what was realised). */
function overTime(report) {
  const start = Date.parse(report.window_start);
  const hours = (iso) => (Date.parse(iso) - start) / 3.6e6;
  const xLabel = "hours since the window's start";
  const charts = [];
  if (report.volume.length) {
    const points = report.volume.map((v) => [hours(v.window_start), v.requests]);
    charts.push(lineChart([{ name: "requests", points }], { title: "requests", xLabel }));
  }
  const grouped = (rows, key) =>
    rows.reduce((out, r) => {
      (out[r[key]] = out[r[key]] || []).push(r);
      return out;
    }, {});
  for (const [metric, rows] of Object.entries(grouped(report.performance, "metric"))) {
    const bySegment = grouped(rows.map((r) => ({ ...r, segment: r.segment ?? "all" })), "segment");
    const series = Object.entries(bySegment).map(([segment, rs]) => ({
      name: segment,
      points: rs.map((r) => [hours(r.window_start), r.value]),
    }));
    charts.push(lineChart(series, { title: metric, xLabel }));
  }
  for (const [metric, rows] of Object.entries(grouped(report.estimated, "metric"))) {
    const series = [{ name: "estimated", points: rows.map((r) => [hours(r.window_start), r.estimate]) }];
    const realised = rows.filter((r) => r.realised !== null && r.realised !== undefined);
    if (realised.length) series.push({ name: "realised", points: realised.map((r) => [hours(r.window_start), r.realised]) });
    charts.push(lineChart(series, { title: `${metric} (estimated)`, xLabel }));
  }
  return charts;
}

/** #/deployments/<name>/monitoring: drift, distributions and alerts of one endpoint. */
export async function monitoringPage(root, route, { navigate }) {
  const { name } = route.params;
  const window = route.query.get("window") || "7d";
  const report = await api("GET", `api/v1/monitoring/${seg(name)}/report?window=${encodeURIComponent(window)}`);
  const picker = h(
    "select",
    {
      id: "window",
      "aria-label": "window",
      onchange: () => navigate(`#/deployments/${seg(name)}/monitoring?window=${encodeURIComponent(picker.value)}`),
    },
    [...new Set([...WINDOWS, window])].map((w) => h("option", { value: w, selected: w === window }, w)),
  );
  const drift = report.drift;
  const byColumn = Object.fromEntries(report.distributions.map((d) => [d.column, d]));
  const ordered = drift ? byEffect(drift.columns) : [];
  const requests = report.volume.reduce((s, v) => s + (v.requests || 0), 0);
  const rowsSeen = report.volume.reduce((s, v) => s + (v.rows || 0), 0);
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/deployments" }, "Deployments"), " / ", h("a", { href: `#/deployments/${seg(name)}` }, name), " /"),
    h("h1", {}, `Monitoring of ${name}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Window"),
      h("dd", {}, picker, ` ${report.window_start} → ${report.window_end}`),
      h("dt", {}, "Traffic"),
      h("dd", { id: "traffic" }, `${requests} requests, ${rowsSeen} rows`),
      h("dt", {}, "Reference"),
      h(
        "dd",
        { id: "reference" },
        report.reference ? `${report.reference.dataset} (the training data of ${report.reference.model_version})` : "none",
      ),
    ),
    h("h2", {}, "Drift per feature"),
    drift
      ? [
          h(
            "p",
            { id: "drift-summary", class: drift.dataset_drift ? "status failed" : "status finished" },
            `${(drift.drift_share * 100).toFixed(0)} % of the features drifted`,
            drift.dataset_drift ? ` (over the ${(drift.share_threshold * 100).toFixed(0)} % threshold: the data drifted)` : "",
            ` · ${drift.n_reference} reference rows, ${drift.n_current} current · p-values corrected by ${drift.correction}`,
          ),
          driftTable(drift.columns),
          h("h2", {}, "Distributions"),
          h(
            "div",
            { id: "distributions", class: "charts" },
            ordered.filter((c) => byColumn[c.column]).map((c) => h("div", { class: "distribution", "data-column": c.column }, distributionPlot(byColumn[c.column]))),
          ),
        ]
      : h("p", { id: "no-drift", class: "muted" }, report.reference_note || "No reference to compare the window with."),
    h("h2", {}, "Over time"),
    h("div", { id: "over-time", class: "charts" }, overTime(report)),
    report.performance.length || report.estimated.length
      ? null
      : h("p", { class: "muted" }, "No performance yet: no labels joined and no estimate in the window."),
    h("h2", {}, "Alerts"),
    report.alerts.length ? alertsTable(report.alerts) : h("p", { class: "muted" }, "No alert fired in the window."),
  );
}
