// One run: its params, metrics (the latest value and a chart of the history over steps),
// tags, environment, dataset inputs, lineage and artifacts.
import { api, ApiError, apiBlob, seg } from "./api.js";
import { lineChart } from "./chart.js";
import { bytes, duration, h, number, replace, table, when } from "./dom.js";
import { lineageGraph } from "./lineage.js";
import { PREVIEW_UP_TO, previewKind, showPreview } from "./preview.js";

const CHARTED_UP_TO = 30; // metrics charted at once; the rest keep their latest value

// what the run ran on, from the tags loopstack (and mlflow) capture at its start
const ENVIRONMENT = [
  ["Python", "loopstack.python"],
  ["Platform", "loopstack.platform"],
  ["Host", "loopstack.host"],
  ["Command", "loopstack.command"],
  ["Source", "mlflow.source.name"],
  ["Git commit", "mlflow.source.git.commit"],
  ["Git dirty", "loopstack.git.dirty"],
  ["Git repository", "mlflow.source.git.repoURL"],
];

function environment(tags) {
  const rows = ENVIRONMENT.filter(([, key]) => tags[key]).map(([label, key]) => [label, h("span", { class: "mono" }, tags[key])]);
  const packages = tags["loopstack.packages"];
  if (!rows.length && !packages) return null;
  return section("Environment", "environment",
    rows.length ? table(null, rows, { class: "grid kv", id: "environment-table" }) : null,
    packages ? h("details", {}, h("summary", {}, `${packages.split("\n").filter(Boolean).length} packages`), h("pre", { class: "preview-text" }, packages)) : null);
}

/** The run's lineage (what it read, what came of it), drawn once the graph is read: the
 * rest of the page does not wait for it. */
function lineage(runId) {
  const holder = h("div", { id: "run-lineage", class: "scroll" }, h("p", { class: "muted" }, "Reading the lineage…"));
  api("GET", `api/v1/lineage?node=${encodeURIComponent(`run:${runId}`)}`).then(
    (graph) =>
      replace(holder, (graph.edges || []).length
        ? lineageGraph(graph)
        : h("p", { class: "muted" }, "No lineage recorded: no dataset, model version or pipeline is linked to this run.")),
    (err) => replace(holder, h("p", { class: "error", role: "alert" }, err instanceof ApiError ? `${err.status}: ${err.message}` : String(err))),
  );
  return section("Lineage", "lineage", holder);
}

function section(title, id, ...content) {
  return h("section", { id }, h("h2", {}, title), ...content);
}

function keyValues(entries, id, empty) {
  if (entries.length === 0) return h("p", { class: "muted" }, empty);
  return table(["Key", "Value"], entries.map(([k, v]) => [h("span", { class: "mono" }, k), String(v)]), { id, class: "grid kv" });
}

function fetchArtifact(runId, path) {
  return apiBlob(`api/v1/runs/${seg(runId)}/artifacts/${path.split("/").map(seg).join("/")}`);
}

async function download(runId, path) {
  const blob = await fetchArtifact(runId, path);
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: path.split("/").pop() });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function preview(runId, file) {
  const panel = document.getElementById("artifact-preview");
  if (!previewKind(file.path)) {
    replace(panel, h("p", { class: "muted" }, `No preview for ${file.path}: download it.`));
  } else if (file.size > PREVIEW_UP_TO) {
    replace(panel, h("p", { class: "muted" }, `${file.path} is ${bytes(file.size)}, too large to preview: download it.`));
  } else {
    replace(panel, h("p", { class: "muted" }, "Loading…"));
    try {
      await showPreview(panel, file.path, await fetchArtifact(runId, file.path));
    } catch (err) {
      replace(panel, h("p", { class: "error", role: "alert" }, String(err.message || err)));
    }
  }
}

async function artifactList(runId, path) {
  const { files } = await api("GET", `api/v1/runs/${seg(runId)}/artifacts?path=${encodeURIComponent(path)}`);
  if (files.length === 0) return h("p", { class: "muted" }, path ? "empty" : "No artifacts.");
  const list = h("ul", { class: path ? "artifacts nested" : "artifacts", "data-path": path });
  for (const f of files) {
    const name = f.path.split("/").pop();
    if (f.is_dir) {
      const holder = h("div");
      const toggle = h("button", {
        type: "button",
        class: "linkish dir",
        "aria-expanded": "false",
        onclick: async () => {
          if (toggle.getAttribute("aria-expanded") === "true") {
            toggle.setAttribute("aria-expanded", "false");
            replace(holder);
            return;
          }
          toggle.setAttribute("aria-expanded", "true");
          replace(holder, await artifactList(runId, f.path));
        },
      }, `${name}/`);
      list.append(h("li", { "data-artifact": f.path }, toggle, holder));
    } else {
      list.append(h("li", { "data-artifact": f.path },
        h("button", { type: "button", class: "linkish file", title: `preview ${f.path}`, onclick: () => preview(runId, f) }, name),
        h("span", { class: "muted" }, ` ${bytes(f.size)} `),
        h("button", { type: "button", class: "download", title: `download ${f.path}`, onclick: () => download(runId, f.path) }, "download")));
    }
  }
  return list;
}

export async function runPage(root, route) {
  const { experimentId, runId } = route.params;
  const run = await api("GET", `api/v1/runs/${seg(runId)}`);
  const expId = run.experiment_id || experimentId;
  let experimentName = expId;
  try {
    experimentName = (await api("GET", `api/v1/experiments/${seg(expId)}`)).name;
  } catch {
    // the run's page still shows without its experiment's name
  }
  const latest = [...run.latest_metrics].sort((a, b) => a.key.localeCompare(b.key));
  const charted = latest.slice(0, CHARTED_UP_TO);
  const histories = await Promise.all(
    charted.map((m) => api("GET", `api/v1/runs/${seg(runId)}/metrics/${seg(m.key)}`).then((r) => r.metrics)),
  );
  const tags = Object.entries(run.tags).sort(([a], [b]) => a.localeCompare(b));
  const userTags = tags.filter(([k]) => !k.startsWith("mlflow.") && !k.startsWith("loopstack."));
  const systemTags = tags.filter(([k]) => k.startsWith("mlflow.") || k.startsWith("loopstack."));

  const metricRows = latest.map((m) => [h("span", { class: "mono" }, m.key), number(m.value), String(m.step), when(m.timestamp)]);
  const charts = h("div", { class: "charts", id: "metric-charts" });
  charted.forEach((m, i) => {
    const points = histories[i].map((p) => [Number(p.step), typeof p.value === "number" ? p.value : Number.NaN]);
    charts.append(lineChart([{ name: m.key, points }], { title: m.key }));
  });

  replace(
    root,
    h("p", { class: "crumbs" },
      h("a", { href: "#/" }, "Experiments"), " / ",
      h("a", { href: `#/experiments/${encodeURIComponent(expId)}` }, experimentName), " / ",
      run.run_name || run.run_id),
    h("h1", { id: "run-name" }, run.run_name || run.run_id),
    h("dl", { class: "facts" },
      h("dt", {}, "Run ID"), h("dd", { class: "mono", id: "run-id" }, run.run_id),
      h("dt", {}, "Status"), h("dd", { class: `status ${String(run.status).toLowerCase()}` }, run.status),
      h("dt", {}, "Started"), h("dd", {}, when(run.start_time)),
      h("dt", {}, "Duration"), h("dd", {}, run.end_time ? duration(run.end_time - run.start_time) : "running"),
      h("dt", {}, "User"), h("dd", {}, run.user_id),
      h("dt", {}, "Artifact URI"), h("dd", { class: "mono" }, run.artifact_uri)),
    section("Parameters", "params", keyValues(Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b)), "params-table", "No parameters.")),
    section("Metrics", "metrics",
      latest.length
        ? table(["Key", "Latest", "Step", "Logged"], metricRows, { id: "metrics-table", class: "grid" })
        : h("p", { class: "muted" }, "No metrics."),
      latest.length > CHARTED_UP_TO ? h("p", { class: "muted" }, `Charts of the first ${CHARTED_UP_TO} metrics.`) : null,
      charts),
    section("Tags", "tags",
      keyValues(userTags, "tags-table", "No tags."),
      systemTags.length ? h("details", {}, h("summary", {}, `${systemTags.length} system tags`), keyValues(systemTags, "system-tags", "")) : null),
    environment(run.tags),
    run.inputs && run.inputs.length
      ? section("Dataset inputs", "inputs", table(["Name", "Digest", "Source"], run.inputs.map((d) => [d.name, h("span", { class: "mono" }, d.digest), d.source])))
      : null,
    lineage(runId),
    section("Artifacts", "artifacts",
      h("div", { class: "artifact-browser" }, await artifactList(runId, ""), h("div", { id: "artifact-preview", class: "preview" }))),
  );
}
