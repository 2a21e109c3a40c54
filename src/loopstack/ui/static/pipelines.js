// Pipelines: the project's pipeline runs (#/pipelines) and one run (#/pipelines/<run>):
// its graph with each step's status, the steps (cache hits, tries, wall and CPU time,
// peak memory, the tracked run of each, the error of a failed one) and what it cost.
import { api, seg } from "./api.js";
import { dagGraph, statusClass } from "./dag.js";
import { bytes, duration, h, replace, table, when, whileShown } from "./dom.js";

const LISTED = 200; // runs the list asks for
export const RUNNING_REFRESH_MS = 2000;

/** Seconds as the page writes a duration ("350 ms", "1.2 s", "3 min 4 s"); "" for none. */
export function seconds(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "";
  return duration(Math.round(value * 1000));
}

/** The steps of a run that are done (finished or from the cache), cached, and in all. */
export function stepCounts(steps) {
  const done = steps.filter((s) => s.status === "FINISHED" || s.status === "CACHED").length;
  const cached = steps.filter((s) => s.status === "CACHED").length;
  return { done, cached, total: steps.length };
}

function runDuration(run) {
  if (run.finished_at) return duration(run.finished_at - run.created_at);
  return run.status === "RUNNING" ? `running for ${duration(Date.now() - run.created_at)}` : "";
}

function costText(cost) {
  if (!cost) return "";
  return `CPU ${seconds(cost.cpu_s)} · wall ${seconds(cost.wall_s)} · peak ${bytes(cost.peak_rss_bytes)}`;
}

function status(text) {
  return h("span", { class: `status ${String(text).toLowerCase()}` }, text);
}

/** #/pipelines: the project's pipeline runs, newest first (?pipeline=<name>: of one). */
export async function pipelinesPage(root, route) {
  const only = route.query.get("pipeline") || "";
  const query = new URLSearchParams({ limit: String(LISTED) });
  if (only) query.set("pipeline", only);
  const { runs } = await api("GET", `api/v1/pipelines/runs?${query}`);
  const rows = runs.map((r) => {
    const counts = stepCounts(r.steps);
    return h(
      "tr",
      { "data-run": r.run_uuid, "data-pipeline": r.pipeline },
      h("td", { class: "mono" }, h("a", { href: `#/pipelines/${seg(r.run_uuid)}` }, r.run_uuid.slice(0, 12))),
      h("td", {}, h("a", { href: `#/pipelines?pipeline=${encodeURIComponent(r.pipeline)}` }, r.pipeline)),
      h("td", {}, status(r.status)),
      h("td", {}, when(r.created_at)),
      h("td", { class: "num" }, runDuration(r)),
      h("td", { class: "num steps" }, `${counts.done}/${counts.total}`),
      h("td", { class: "num cache-hits" }, counts.cached),
      h("td", { class: "cost" }, costText(r.cost)),
    );
  });
  replace(
    root,
    only ? h("p", { class: "crumbs" }, h("a", { href: "#/pipelines" }, "Pipelines"), " /") : null,
    h("h1", {}, only ? `Runs of ${only}` : "Pipeline runs"),
    runs.length
      ? table(["Run", "Pipeline", "Status", "Started", "Duration", "Steps done", "Cache hits", "Cost"], rows, { id: "pipeline-runs", class: "grid" })
      : h("p", { class: "muted" }, "No pipeline runs yet: loopstack pipelines run <module:pipeline>."),
    runs.length === LISTED ? h("p", { class: "muted" }, `The latest ${LISTED} runs.`) : null,
  );
}

function stepRunLink(run, step) {
  if (!step.tracking_run_id) return "";
  const experiment = run.experiment_id === null || run.experiment_id === undefined ? "-" : run.experiment_id;
  return h("a", { href: `#/experiments/${seg(experiment)}/runs/${seg(step.tracking_run_id)}`, class: "mono" }, step.tracking_run_id.slice(0, 12));
}

function stepsTable(run) {
  const rows = run.steps.map((st) =>
    h(
      "tr",
      { "data-step": st.step, "data-status": statusClass(st.status) },
      h("td", {}, st.step),
      h("td", {}, h("span", { class: `step-status ${statusClass(st.status)}` }, st.status)),
      h("td", { class: "cached" }, st.status === "CACHED" ? "yes" : "no"),
      h("td", { class: "num" }, st.attempts),
      h("td", { class: "num" }, seconds(st.wall_s)),
      h("td", { class: "num" }, seconds(st.cpu_s)),
      h("td", { class: "num" }, st.peak_rss_bytes ? bytes(st.peak_rss_bytes) : ""),
      h("td", {}, stepRunLink(run, st)),
      h("td", { class: "mono" }, st.cached_from ? h("a", { href: `#/pipelines/${seg(st.cached_from)}` }, st.cached_from.slice(0, 12)) : ""),
      h("td", { class: "step-error" }, st.error ? h("details", {}, h("summary", {}, st.error.split("\n")[0].slice(0, 120)), h("pre", { class: "preview-text" }, st.error)) : ""),
    ),
  );
  return table(["Step", "Status", "Cached", "Attempts", "Wall", "CPU", "Peak RSS", "Tracked run", "Cached from", "Error"], rows, { id: "steps", class: "grid" });
}

/** #/pipelines/<run>: one pipeline run's graph, steps and cost; drawn again every
 * RUNNING_REFRESH_MS while the run is running and the page is open. */
export async function pipelineRunPage(root, route) {
  const path = `api/v1/pipelines/runs/${seg(route.params.runUuid)}`;
  const run = await api("GET", path);
  drawRun(root, run);
  if (run.status !== "RUNNING") return;
  let busy = false;
  whileShown(root, RUNNING_REFRESH_MS, async (stop) => {
    if (busy) return;
    busy = true;
    try {
      const fresh = await api("GET", path);
      if (!root.isConnected) return;
      drawRun(root, fresh);
      if (fresh.status !== "RUNNING") stop();
    } catch {
      // a failed refresh keeps what is drawn; the next one tries again
    } finally {
      busy = false;
    }
  });
}

function drawRun(root, run) {
  const byName = Object.fromEntries(run.steps.map((st) => [st.step, st]));
  const counts = stepCounts(run.steps);
  const params = Object.keys(run.params || {}).length ? JSON.stringify(run.params) : "none";
  const parent = run.tracking_run_id
    ? h("a", { href: `#/experiments/${seg(run.experiment_id ?? "-")}/runs/${seg(run.tracking_run_id)}`, class: "mono" }, run.tracking_run_id)
    : "none";
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/pipelines" }, "Pipelines"), " / ",
      h("a", { href: `#/pipelines?pipeline=${encodeURIComponent(run.pipeline)}` }, run.pipeline), " /"),
    h("h1", { id: "pipeline-run" }, `${run.pipeline} `, h("span", { class: "id mono" }, run.run_uuid)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Status"), h("dd", { id: "run-status" }, status(run.status)),
      h("dt", {}, "Started"), h("dd", {}, `${when(run.created_at)} by ${run.created_by}`),
      h("dt", {}, "Duration"), h("dd", {}, runDuration(run)),
      h("dt", {}, "Steps"), h("dd", { id: "step-counts" }, `${counts.done}/${counts.total} done, ${counts.cached} from the cache`),
      h("dt", {}, "Cost"), h("dd", { id: "run-cost" }, costText(run.cost)),
      h("dt", {}, "Params"), h("dd", { class: "mono" }, params),
      h("dt", {}, "Executor"), h("dd", {}, `${run.executor}, attempt ${run.attempt}`),
      h("dt", {}, "Tracked run"), h("dd", {}, parent),
      run.error ? [h("dt", {}, "Error"), h("dd", { class: "error", id: "run-error" }, run.error)] : null,
    ),
    h("h2", {}, "Graph"),
    h("div", { class: "scroll", id: "dag" }, dagGraph(run.graph, byName)),
    h("p", { class: "dag-legend muted" }, ["succeeded", "cached", "running", "failed", "pending", "skipped"].map((k) => h("span", { class: `step-status ${k}` }, k))),
    h("h2", {}, "Steps"),
    h("div", { class: "scroll" }, stepsTable(run)),
  );
}
