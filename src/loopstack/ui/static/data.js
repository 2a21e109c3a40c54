// The datasets (#/datasets) and one version of a dataset (#/datasets/<name>/<version>):
// its schema, row count, each column's stored profile with a small plot of its
// distribution, and the validation results recorded against that version.
import { api, seg } from "./api.js";
import { h, number, replace, table, when } from "./dom.js";
import { profilePlot } from "./profile.js";

/** #/datasets/<name>/<version> of a dataset version. */
export function datasetHref(name, version) {
  return `#/datasets/${seg(name)}/${seg(version)}`;
}

/** The validation results of one version (name/version) from those of its dataset. */
export function resultsOf(validations, name, version) {
  return validations.filter((r) => r.dataset === `${name}/${version}`);
}

/** #/datasets: each dataset's newest version. */
export async function datasetsPage(root) {
  const { datasets } = await api("GET", "api/v1/datasets");
  const rows = datasets.map((d) =>
    h(
      "tr",
      { "data-dataset": d.name },
      h("td", {}, h("a", { href: datasetHref(d.name, d.version) }, d.name)),
      h("td", { class: "num" }, String(d.version)), // versions count from 1 and are never deleted
      h("td", {}, h("a", { href: datasetHref(d.name, d.version) }, `v${d.version}`)),
      h("td", { class: "num" }, d.num_rows.toLocaleString("en")),
      h("td", { class: "num" }, String(d.num_columns)),
      h("td", {}, when(d.created_at)),
      h("td", {}, d.created_by || ""),
    ),
  );
  replace(
    root,
    h("h1", {}, "Datasets"),
    datasets.length
      ? table(["Name", "Versions", "Latest version", "Rows", "Columns", "Created", "By"], rows, { id: "datasets", class: "grid" })
      : h("p", { id: "no-datasets", class: "muted" }, "No datasets in this project yet (", h("code", {}, "ls.register_dataset(name, df)"), ")."),
  );
}

function range(c) {
  const value = (v) => (typeof v === "number" ? number(v) : v ?? "");
  return [value(c.min), typeof c.mean === "number" ? number(c.mean) : "", value(c.max)];
}

function profileTable(dv) {
  const columns = (dv.profile && dv.profile.columns) || {};
  const rows = dv.schema.columns.map((col) => {
    const c = columns[col.name] || {};
    const [min, mean, max] = range(c);
    return h(
      "tr",
      { "data-column": col.name },
      h("td", {}, col.name),
      h("td", { class: "mono" }, col.type),
      h("td", {}, c.kind || ""),
      h("td", { class: "num" }, c.nulls === undefined ? "" : String(c.nulls)),
      h("td", { class: "num" }, c.distinct === undefined ? "" : String(c.distinct)),
      h("td", { class: "num" }, min),
      h("td", { class: "num" }, mean),
      h("td", { class: "num" }, max),
      h("td", { class: "plot" }, profilePlot(col.name, c) || h("span", { class: "muted" }, "no plot")),
    );
  });
  return table(["Column", "Type", "Kind", "Nulls", "Distinct", "Min", "Mean", "Max", "Distribution"], rows, { id: "profile", class: "grid" });
}

function brief(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return number(value);
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

function validationCard(report) {
  const failed = report.results.filter((r) => !r.passed).length;
  const rows = report.results.map((r) =>
    h(
      "tr",
      { "data-check": r.name, class: r.passed ? "passed" : "failed" },
      h("td", {}, r.name),
      h("td", {}, r.column || ""),
      h("td", { class: r.passed ? "status finished" : "status failed" }, r.passed ? "pass" : "FAIL"),
      h("td", { class: "mono" }, brief(r.observed)),
      h("td", { class: "mono" }, brief(r.expected)),
      h("td", {}, r.message || ""),
    ),
  );
  return h(
    "section",
    { class: "validation", "data-result-id": report.result_id, "data-suite": report.suite },
    h(
      "h3",
      {},
      `Suite ${report.suite}: `,
      h("span", { class: report.passed ? "status finished" : "status failed" }, report.passed ? "passed" : `FAILED (${failed} of ${report.results.length} checks)`),
      h("span", { class: "muted" }, ` ${when(report.created_at)}`),
    ),
    table(["Check", "Column", "Result", "Observed", "Expected", "Message"], rows, { class: "grid checks" }),
  );
}

/** #/datasets/<name>[/<version>]: one version (the newest without one). */
export async function datasetPage(root, route) {
  const { name } = route.params;
  const [{ datasets: versions }, { validations }] = await Promise.all([
    api("GET", `api/v1/datasets?name=${seg(name)}`),
    api("GET", `api/v1/validations?dataset=${seg(name)}`),
  ]);
  const wanted = route.params.version;
  const dv = wanted ? versions.find((v) => String(v.version) === wanted) : versions[0];
  if (!dv) {
    const there = versions.length ? `it has versions ${versions.map((v) => v.version).join(", ")}` : "there is no such dataset in this project";
    replace(root, h("h1", {}, `Dataset ${name}`), h("p", { class: "error", role: "alert", id: "no-version" }, `No version ${wanted || ""} of dataset ${name}: ${there}.`));
    return;
  }
  const reports = resultsOf(validations, dv.name, dv.version);
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dv.name),
    h("h1", { id: "dataset-name" }, `${dv.name} v${dv.version}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Rows"),
      h("dd", { id: "num-rows" }, dv.num_rows.toLocaleString("en")),
      h("dt", {}, "Columns"),
      h("dd", {}, String(dv.num_columns)),
      h("dt", {}, "Digest"),
      h("dd", { class: "mono" }, dv.digest),
      h("dt", {}, "Source"),
      h("dd", { class: "mono" }, dv.source_uri || "(a frame in memory)"),
      dv.description ? [h("dt", {}, "Description"), h("dd", {}, dv.description)] : null,
      h("dt", {}, "Created"),
      h("dd", {}, `${when(dv.created_at)} by ${dv.created_by || "?"}`),
      h("dt", {}, "Versions"),
      h(
        "dd",
        { id: "versions" },
        versions.map((v) => [v.version === dv.version ? h("strong", {}, `v${v.version}`) : h("a", { href: datasetHref(v.name, v.version) }, `v${v.version}`), " "]),
      ),
    ),
    h("h2", {}, "Schema and profile"),
    h("div", { class: "scroll" }, profileTable(dv)),
    h("h2", {}, "Validation results"),
    h(
      "div",
      { id: "validations" },
      reports.length ? reports.map(validationCard) : h("p", { class: "muted", id: "no-validations" }, "No validation results for this version."),
    ),
  );
}
