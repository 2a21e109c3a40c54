// The model registry: the models list (#/models) and a model's page (#/models/<name>):
// its versions, its aliases with every move, and its approval requests with the
// evidence behind each (what the request carried and the gates recorded on the
// version), approved or rejected from here. The server decides who may: a refusal is
// shown as the server wrote it.
import { api, ApiError, seg } from "./api.js";
import { h, replace, table, when } from "./dom.js";
import { lineageGraph } from "./lineage.js";

/** #/models: every registered model of the project. */
export async function modelsPage(root) {
  const { models } = await api("GET", "api/v1/models?max_results=1000");
  const rows = models.map((m) =>
    h(
      "tr",
      { "data-model": m.name },
      h("td", {}, h("a", { href: `#/models/${seg(m.name)}` }, m.name)),
      h("td", { class: "num" }, m.latest_version ?? ""),
      h("td", {}, aliasList(m.aliases)),
      h("td", {}, m.created_by),
      h("td", {}, when(m.updated_at)),
    ),
  );
  replace(
    root,
    h("h1", {}, "Models"),
    models.length
      ? table(["Name", "Latest", "Aliases", "Created by", "Updated"], rows, { id: "models", class: "grid" })
      : h("p", { class: "muted" }, "No registered models yet: log one (run.log_model(model, name=...))."),
  );
}

function aliasList(aliases) {
  const entries = Object.entries(aliases || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.map(([alias, version], i) => [i ? ", " : "", h("span", { class: "alias" }, `@${alias}`), ` → v${version}`]);
}

function runLink(runId) {
  // the run's page finds its experiment from the run itself
  return runId ? h("a", { class: "mono", href: `#/experiments/-/runs/${seg(runId)}` }, runId.slice(0, 12)) : "";
}

function versionsTable(versions) {
  const rows = versions.map((v) =>
    h(
      "tr",
      { "data-version": v.version },
      h("td", { class: "num" }, `v${v.version}`),
      h("td", {}, h("span", { class: `approval ${v.approval_state}` }, v.approval_state)),
      h("td", {}, (v.aliases || []).map((a) => `@${a}`).join(", ")),
      h("td", {}, v.flavor),
      h("td", {}, when(v.created_at)),
      h("td", {}, v.created_by),
      h("td", {}, runLink(v.run_id)),
    ),
  );
  return table(["Version", "Approval", "Aliases", "Flavor", "Created", "By", "Run"], rows, {
    id: "versions",
    class: "grid",
  });
}

function historyTable(moves) {
  const version = (v) => (v === null || v === undefined ? "—" : `v${v}`);
  const rows = [...moves].reverse().map((m) =>
    h(
      "tr",
      { "data-alias": m.alias },
      h("td", {}, when(m.ts)),
      h("td", {}, `@${m.alias}`),
      h("td", {}, version(m.from_version)),
      h("td", {}, version(m.to_version)),
      h("td", {}, m.actor),
      h("td", {}, m.reason),
      h("td", { class: "mono" }, m.approval_id ? m.approval_id.slice(0, 12) : ""),
    ),
  );
  return table(["When", "Alias", "From", "To", "By", "Reason", "Approval"], rows, {
    id: "alias-history",
    class: "grid",
  });
}

function evidenceValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return h("code", { class: "mono" }, JSON.stringify(value));
  return String(value);
}

function evidenceTable(evidence) {
  const keys = Object.keys(evidence || {}).sort();
  if (!keys.length) return h("p", { class: "muted" }, "The request carried no evidence.");
  return table(
    null,
    keys.map((k) => h("tr", { "data-key": k }, h("th", {}, k), h("td", {}, evidenceValue(evidence[k])))),
    { class: "grid evidence" },
  );
}

function gatesBlock(gates) {
  if (!gates) return h("p", { class: "muted" }, "The version's gates could not be read.");
  if (!gates.recorded) return h("p", { class: "muted" }, "No gate evaluation was recorded on this version.");
  const rows = gates.results.map((r) =>
    h(
      "tr",
      { "data-gate": r.gate, class: r.passed ? "passed" : "failed" },
      h("td", {}, r.gate),
      h("td", { class: r.passed ? "status finished" : "status failed" }, r.passed ? "passed" : "failed"),
      h("td", {}, r.reason),
    ),
  );
  return h(
    "div",
    { class: "gates" },
    h(
      "p",
      {},
      h("strong", { class: gates.passed ? "status finished" : "status failed" }, gates.passed ? "Every gate passed" : "A gate failed"),
      ` · evaluated ${when(gates.evaluated_at)}`,
      gates.recorded_by ? ` by ${gates.recorded_by}` : "",
      gates.champion ? ` against ${gates.champion}` : "",
    ),
    table(["Gate", "Outcome", "Reason"], rows, { class: "grid gate-results" }),
  );
}

function requestCard(request, gates, rerender) {
  const error = h("p", { class: "error", role: "alert" });
  const comment = h("input", { type: "text", class: "comment", "aria-label": "comment", placeholder: "comment", size: 40 });
  const decide = async (verb, buttons) => {
    buttons.forEach((b) => (b.disabled = true));
    error.textContent = "";
    try {
      await api("POST", `api/v1/approvals/${seg(request.request_id)}/${verb}`, { comment: comment.value });
      await rerender();
    } catch (err) {
      error.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err);
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  let actions = null;
  if (request.state === "pending") {
    const approve = h("button", { type: "button", class: "approve" }, "Approve");
    const reject = h("button", { type: "button", class: "reject" }, "Reject");
    approve.addEventListener("click", () => decide("approve", [approve, reject]));
    reject.addEventListener("click", () => decide("reject", [approve, reject]));
    actions = h("div", { class: "actions" }, comment, approve, reject);
  }
  return h(
    "section",
    { class: `request ${request.state}`, "data-request-id": request.request_id },
    h(
      "h3",
      {},
      `v${request.version} → @${request.alias} `,
      h("span", { class: `approval ${request.state}` }, request.state),
    ),
    h(
      "p",
      { class: "muted" },
      `requested by ${request.requested_by} at ${when(request.requested_at)}`,
      request.decided_by ? ` · ${request.state} by ${request.decided_by} at ${when(request.decided_at)}` : "",
      request.comment ? ` · “${request.comment}”` : "",
    ),
    request.apply_at === "promotion"
      ? h("p", { class: "muted rollout-request" }, `A rollout's request: approving it lets the rollout go on; @${request.alias} moves when the rollout promotes, never if it rolls back.`)
      : null,
    h("h4", {}, "Evidence"),
    evidenceTable(request.evidence),
    h("h4", {}, "Gates recorded on the version"),
    gatesBlock(gates),
    actions,
    error,
  );
}

async function gatesOf(name, version) {
  try {
    return await api("GET", `api/v1/models/${seg(name)}/versions/${seg(version)}/gates`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** The lineage of one version, its version picked from a list (the newest first). */
function lineageBlock(name, versions) {
  const holder = h("div", { id: "lineage-graph", class: "scroll" });
  const error = h("p", { class: "error", role: "alert" });
  const show = async (version) => {
    error.textContent = "";
    try {
      replace(holder, lineageGraph(await api("GET", `api/v1/models/${seg(name)}/versions/${seg(version)}/lineage`)));
    } catch (err) {
      replace(holder);
      error.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err);
    }
  };
  const pick = h(
    "select",
    { id: "lineage-version", "aria-label": "version", onchange: () => show(pick.value) },
    versions.map((v) => h("option", { value: v.version }, `v${v.version}`)),
  );
  show(versions[0].version);
  return h("div", { id: "lineage" }, h("label", {}, "Version ", pick), holder, error);
}

/** #/models/<name>: a model's versions, aliases and their history, approval requests. */
export async function modelPage(root, route) {
  const { name } = route.params;
  const rerender = async () => {
    const fresh = h("div", { class: "page", "data-page": "model" });
    await modelPage(fresh, route);
    replace(root, ...fresh.childNodes);
  };
  const [model, { versions }, { moves }, { requests }] = await Promise.all([
    api("GET", `api/v1/models/${seg(name)}`),
    api("GET", `api/v1/models/${seg(name)}/versions`),
    api("GET", `api/v1/models/${seg(name)}/alias-history`),
    api("GET", `api/v1/approvals?name=${encodeURIComponent(name)}`),
  ]);
  const ordered = [...requests].sort((a, b) => (a.state === "pending") - (b.state === "pending") || a.requested_at - b.requested_at).reverse();
  const gateVersions = [...new Set(ordered.map((r) => r.version))];
  const gates = Object.fromEntries(await Promise.all(gateVersions.map(async (v) => [v, await gatesOf(name, v)])));
  const newestFirst = [...versions].sort((a, b) => b.version - a.version);
  const aliases = Object.entries(model.aliases || {}).sort(([a], [b]) => a.localeCompare(b));
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Models"), " /"),
    h("h1", { id: "model-name" }, model.name),
    model.description ? h("p", {}, model.description) : null,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Created"),
      h("dd", {}, `${when(model.created_at)} by ${model.created_by}`),
      h("dt", {}, "Updated"),
      h("dd", {}, when(model.updated_at)),
    ),
    h("h2", {}, "Versions"),
    versions.length ? versionsTable(newestFirst) : h("p", { class: "muted" }, "No versions."),
    h("h2", {}, "Aliases"),
    aliases.length
      ? table(
          ["Alias", "Version"],
          aliases.map(([a, v]) => h("tr", { "data-alias": a }, h("td", {}, `@${a}`), h("td", { class: "num" }, `v${v}`))),
          { id: "aliases", class: "grid" },
        )
      : h("p", { class: "muted" }, "No aliases."),
    h("h3", {}, "History"),
    moves.length ? historyTable(moves) : h("p", { class: "muted" }, "No alias has moved yet."),
    versions.length ? [h("h2", {}, "Lineage"), lineageBlock(name, newestFirst)] : null,
    h("h2", {}, "Approval requests"),
    ordered.length
      ? h("div", { id: "approvals" }, ordered.map((r) => requestCard(r, gates[r.version], rerender)))
      : h("p", { class: "muted" }, "No promotion was requested."),
  );
}
