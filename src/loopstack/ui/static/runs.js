// An experiment's runs: filtered, sorted and paginated by the server (the search API, with
// the filter language of search_runs), the metric and param columns of the page shown.
// State lives in the hash (#/experiments/<id>?filter=...&order_by=...&size=...&page=...)
// so every view of the table is a link.
import { api, ApiError } from "./api.js";
import { duration, h, number, replace, when } from "./dom.js";

const SIZES = [25, 50, 100, 250];
const MAX_SIZE = 1000;
// page tokens seen on the way to the current page, per table view: Previous goes back
const trail = new Map();

/** The order_by clause for a column: "metrics.`acc` DESC". */
export function orderClause(kind, key, descending) {
  const quoted = key.includes("`") ? `"${key}"` : `\`${key}\``;
  const field = kind === "attribute" ? key : `${kind}.${quoted}`;
  return `${field} ${descending ? "DESC" : "ASC"}`;
}

/** "metrics.`acc` DESC" -> {kind: "metrics", key: "acc", descending: true}; null for "". */
export function parseClause(clause) {
  const m = /^\s*(?:(metrics|params|tags)\.(?:`([^`]+)`|"([^"]+)"|(\S+))|(\w+))\s*(ASC|DESC)?\s*$/i.exec(clause || "");
  if (!m) return null;
  const kind = m[1] ? m[1].toLowerCase() : "attribute";
  const key = m[2] || m[3] || m[4] || m[5];
  return { kind, key, descending: (m[6] || "ASC").toUpperCase() === "DESC" };
}

/** Rows per page from the hash: a whole number in 1..MAX_SIZE, else 50. */
function pageSize(text) {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= MAX_SIZE ? n : 50;
}

function hashFor(experimentId, state) {
  const q = new URLSearchParams();
  if (state.filter) q.set("filter", state.filter);
  if (state.order) q.set("order_by", state.order);
  if (state.size !== 50) q.set("size", String(state.size));
  if (state.page) q.set("page", state.page);
  const text = q.toString();
  return `#/experiments/${encodeURIComponent(experimentId)}${text ? `?${text}` : ""}`;
}

function keysOf(runs, field) {
  const keys = new Set();
  for (const run of runs) for (const k of Object.keys(run[field] || {})) keys.add(k);
  return [...keys].sort();
}

export async function runsPage(root, route, { navigate }) {
  const experimentId = route.params.experimentId;
  const q = route.query;
  const state = {
    filter: q.get("filter") || "",
    order: q.get("order_by") || "",
    size: pageSize(q.get("size")),
    page: q.get("page") || "",
  };
  const view = JSON.stringify([experimentId, state.filter, state.order, state.size]);
  const go = (changes) => navigate(hashFor(experimentId, { ...state, page: "", ...changes }));

  // the experiment and its runs at once: one round trip of waiting, not two
  const started = performance.now();
  const searching = api("POST", "api/v1/runs/search", {
    experiment_ids: [experimentId],
    filter: state.filter,
    max_results: state.size,
    order_by: state.order ? [state.order] : [],
    page_token: state.page || null,
  }).then(
    (found) => ({ found, elapsed: performance.now() - started }),
    (error) => ({ error }),
  );
  const experiment = await api("GET", `api/v1/experiments/${encodeURIComponent(experimentId)}`);
  const filterBox = h("input", {
    id: "filter",
    type: "search",
    value: state.filter,
    size: 60,
    placeholder: "metrics.acc > 0.9 and params.lr = '0.1'",
    "aria-label": "filter",
    spellcheck: "false",
  });
  const filterError = h("p", { id: "filter-error", class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "filter", onsubmit: (e) => { e.preventDefault(); go({ filter: filterBox.value.trim() }); } },
    filterBox,
    h("button", { type: "submit" }, "Search"),
    state.filter ? h("button", { type: "button", onclick: () => go({ filter: "" }) }, "Clear") : null,
  );
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Experiments"), " / ", experiment.name),
    h("h1", {}, experiment.name, h("span", { class: "muted id" }, ` experiment ${experiment.experiment_id}`)),
    form,
    filterError,
  );

  const { found, elapsed, error } = await searching;
  if (error instanceof ApiError && error.status === 422) {
    filterError.textContent = error.message; // a filter or order the grammar refuses
    return;
  }
  if (error) throw error;
  const runs = found.runs;
  const sorted = parseClause(state.order);
  const metricKeys = keysOf(runs, "metrics");
  const paramKeys = keysOf(runs, "params");
  if (sorted && sorted.kind === "metrics" && !metricKeys.includes(sorted.key)) metricKeys.push(sorted.key);
  if (sorted && sorted.kind === "params" && !paramKeys.includes(sorted.key)) paramKeys.push(sorted.key);

  const sortHeader = (kind, key, text, cls) => {
    const active = sorted && sorted.kind === kind && sorted.key === key;
    const descending = active ? !sorted.descending : true; // first click: highest first
    const arrow = active ? (sorted.descending ? " ▼" : " ▲") : "";
    return h(
      "th",
      {
        class: `sortable ${cls || ""}`,
        "aria-sort": active ? (sorted.descending ? "descending" : "ascending") : "none",
        "data-kind": kind,
        "data-key": key,
        title: `sort by ${kind === "attribute" ? key : `${kind}.${key}`}`,
      },
      h("button", { type: "button", class: "sort", onclick: () => go({ order: orderClause(kind, key, descending) }) }, text, arrow),
    );
  };

  const selected = new Set();
  const compare = h("button", { type: "button", id: "compare", disabled: true, onclick: () => navigate(`#/compare?experiment=${encodeURIComponent(experimentId)}&runs=${[...selected].map(encodeURIComponent).join(",")}`) }, "Compare selected");
  const groups = h(
    "tr",
    { class: "groups" },
    h("th", { colspan: 5 }, ""),
    metricKeys.length ? h("th", { colspan: metricKeys.length, class: "group metric" }, "Metrics") : null,
    paramKeys.length ? h("th", { colspan: paramKeys.length, class: "group param" }, "Parameters") : null,
  );
  const head = h(
    "tr",
    {},
    h("th", {}, ""),
    h("th", {}, "Run"),
    sortHeader("attribute", "start_time", "Created"),
    h("th", {}, "Duration"),
    h("th", {}, "Status"),
    metricKeys.map((k) => sortHeader("metrics", k, k, "metric")),
    paramKeys.map((k) => sortHeader("params", k, k, "param")),
  );
  const body = runs.map((run) =>
    h(
      "tr",
      { "data-run-id": run.run_id },
      h("td", {}, h("input", {
        type: "checkbox",
        "aria-label": `select ${run.run_name || run.run_id}`,
        onchange: (e) => {
          if (e.target.checked) selected.add(run.run_id);
          else selected.delete(run.run_id);
          compare.disabled = selected.size < 2;
        },
      })),
      h("td", {}, h("a", { href: `#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(run.run_id)}` }, run.run_name || run.run_id)),
      h("td", {}, when(run.start_time)),
      h("td", {}, run.end_time ? duration(run.end_time - run.start_time) : ""),
      h("td", { class: `status ${String(run.status).toLowerCase()}` }, run.status),
      metricKeys.map((k) => h("td", { class: "num metric", "data-key": k }, number(run.metrics[k]))),
      paramKeys.map((k) => h("td", { class: "param", "data-key": k }, run.params[k] ?? "")),
    ),
  );

  const before = trail.get(view) || [];
  const here = before.indexOf(state.page);
  const pages = here === -1 ? [...before, state.page] : before.slice(0, here + 1);
  trail.set(view, pages);
  const pager = h(
    "div",
    { class: "pager" },
    h("button", { type: "button", id: "previous", disabled: pages.length < 2, onclick: () => go({ page: pages[pages.length - 2] }) }, "← Previous"),
    h("span", { id: "page-number" }, `page ${pages.length}`),
    h("button", { type: "button", id: "next", disabled: !found.next_page_token, onclick: () => go({ page: found.next_page_token }) }, "Next →"),
    h("label", {}, " rows ", h("select", { id: "size", onchange: (e) => go({ size: Number(e.target.value) }) }, [...new Set([...SIZES, state.size])].sort((a, b) => a - b).map((n) => h("option", { value: n, selected: n === state.size }, n)))),
    compare,
    h("span", { class: "muted", id: "timing" }, `${runs.length} runs in ${Math.round(elapsed)} ms`),
  );
  root.append(
    pager,
    runs.length
      ? h("div", { class: "scroll" }, h("table", { id: "runs", class: "grid" }, h("thead", {}, groups, head), h("tbody", {}, body)))
      : h("p", { class: "muted", id: "no-runs" }, state.filter ? "No run matches this filter." : "No runs in this experiment yet."),
  );
}
