// A deployment's live traffic on its page: requests, errors and p50/p99 latency per
// minute, a line per model version, and each shadow version's agreement with the
// primary, read from /api/v1/deployments/<name>/live and drawn again every 10 s while
// the page is open (the timer stops once the page is left).
import { api, ApiError, seg } from "./api.js";
import { lineChart } from "./chart.js";
import { h, number, replace, table, whileShown } from "./dom.js";

export const LIVE_REFRESH_MS = 10_000;
const WINDOWS = [15, 60, 180, 1440]; // minutes the window picker offers

/** A series' name on the charts: "churn/3" (the arm's model serving that version), or
 * "v3"; a shadow's "churn/4 (shadow)". */
export function versionName(series, arms) {
  const arm = (arms || []).find((a) => String(a.version) === String(series.model_version));
  const base = arm ? `${arm.model}/${series.model_version}` : `v${series.model_version}`;
  return series.shadow ? `${base} (shadow)` : base;
}

/** One chart's lines: [{name, points: [[minutesBeforeNow, value], ...]}]; a null value
 * (no request that minute) leaves a gap rather than a zero. */
export function liveLines(doc, key, arms, only = () => true) {
  const n = doc.buckets.length;
  return doc.series.filter(only).map((sr) => ({
    name: versionName(sr, arms),
    points: sr[key].map((v, i) => [i - (n - 1), v === null || v === undefined ? Number.NaN : v]),
  }));
}

function pct(v) {
  return v === null || v === undefined ? "" : `${number(Math.round(v * 10000) / 100)} %`;
}

function ms(v) {
  return v === null || v === undefined ? "" : `${number(Math.round(v * 100) / 100)} ms`;
}

function totalsTable(doc, arms) {
  const rows = doc.series.map((sr) =>
    h(
      "tr",
      { "data-version": sr.model_version, "data-shadow": String(sr.shadow) },
      h("td", {}, versionName(sr, arms)),
      h("td", {}, sr.shadow ? "shadow" : "serving"),
      h("td", {}, sr.arms.join(", ")),
      h("td", { class: "num requests" }, sr.totals.requests),
      h("td", { class: "num errors" }, sr.totals.errors),
      h("td", { class: "num error-rate" }, pct(sr.totals.error_rate)),
      h("td", { class: "num p50" }, ms(sr.totals.p50_ms)),
      h("td", { class: "num p99" }, ms(sr.totals.p99_ms)),
      h("td", { class: "num agreement" }, sr.shadow ? `${pct(sr.totals.agreement)}${sr.totals.compared_rows ? ` of ${sr.totals.compared_rows} rows` : ""}` : ""),
    ),
  );
  return table(["Version", "Role", "Arms", "Requests", "Errors", "Error rate", "p50", "p99", "Shadow agreement"], rows, { id: "live-totals", class: "grid" });
}

function charts(doc, arms) {
  const span = [1 - doc.buckets.length, 0];
  const opts = (title, yDomain = null) => ({ title, xLabel: "minutes before now", width: 420, height: 200, xDomain: span, yDomain });
  const shadows = doc.series.some((sr) => sr.shadow);
  return h(
    "div",
    { class: "charts", id: "live-charts" },
    lineChart(liveLines(doc, "requests", arms), opts("requests per minute")),
    lineChart(liveLines(doc, "errors", arms), opts("errors per minute")),
    lineChart(liveLines(doc, "p50_ms", arms), opts("p50 latency (ms)")),
    lineChart(liveLines(doc, "p99_ms", arms), opts("p99 latency (ms)")),
    shadows ? lineChart(liveLines(doc, "agreement", arms, (sr) => sr.shadow), opts("shadow agreement", [0, 1])) : null,
  );
}

/** The "Live traffic" section of a deployment's page: returned at once (the rest of the
 * page does not wait for the prediction log), filled when the first read answers, then
 * drawn again every LIVE_REFRESH_MS while it is on the page. */
export function liveSection(deployment) {
  let minutes = 60;
  const body = h("div", { id: "live-body" }, h("p", { class: "muted" }, "Loading the live traffic…"));
  const stamp = h("span", { id: "live-updated", class: "muted" });
  const picker = h(
    "select",
    { id: "live-minutes", "aria-label": "window", onchange: () => { minutes = Number(picker.value); draw(); } },
    WINDOWS.map((m) => h("option", { value: m, selected: m === minutes }, m < 120 ? `last ${m} min` : `last ${m / 60} h`)),
  );
  const box = h("section", { id: "live", "data-refreshes": "0" }, h("h2", {}, "Live traffic"), h("p", { class: "live-controls" }, picker, " ", stamp), body);
  let busy = false;
  async function draw() {
    if (busy) return;
    busy = true;
    try {
      const doc = await api("GET", `api/v1/deployments/${seg(deployment.name)}/live?minutes=${minutes}`);
      replace(
        body,
        doc.series.length ? [totalsTable(doc, deployment.arms), charts(doc, deployment.arms)] : h("p", { class: "muted", id: "live-empty" }, `No requests in the last ${minutes} minutes.`),
      );
      stamp.textContent = `updated ${new Date().toLocaleTimeString()}, every ${LIVE_REFRESH_MS / 1000} s`;
    } catch (err) {
      replace(body, h("p", { class: "error", role: "alert" }, err instanceof ApiError ? `${err.status}: ${err.message}` : String(err)));
    } finally {
      box.dataset.refreshes = String(Number(box.dataset.refreshes) + 1);
      busy = false;
    }
  }
  whileShown(box, LIVE_REFRESH_MS, draw);
  draw();
  return box;
}
