// Deployments: the endpoints (#/deployments) and one endpoint (#/deployments/<name>):
// its policy, its arms with their traffic weights (a canary's weight changed from
// here), a bandit's arm estimates, and every revision. The server decides who may
// change an endpoint: a refusal is shown as the server wrote it.
import { api, ApiError, seg } from "./api.js";
import { h, number, replace, table, when } from "./dom.js";
import { liveSection } from "./live.js";

/** An arm as the API takes it back: "model/3" (a version) or "model@alias". */
export function modelRef(arm) {
  return /^\d+$/.test(String(arm.ref)) ? `${arm.model}/${arm.ref}` : `${arm.model}@${arm.ref}`;
}

function armsSummary(arms) {
  return arms
    .map((a) => `${a.name} ${modelRef(a)}${a.version !== null && a.version !== undefined ? ` (v${a.version})` : ""} ${number(a.weight)}%`)
    .join(" · ");
}

/** #/deployments: every endpoint of the project. */
export async function deploymentsPage(root) {
  const { deployments } = await api("GET", "api/v1/deployments");
  const rows = deployments.map((d) =>
    h(
      "tr",
      { "data-deployment": d.name },
      h("td", {}, h("a", { href: `#/deployments/${seg(d.name)}` }, d.name)),
      h("td", {}, d.policy),
      h("td", {}, d.stage),
      h("td", { class: "num" }, d.revision),
      h("td", {}, armsSummary(d.arms.filter((a) => a.weight > 0 || a.role === "shadow"))),
      h("td", {}, `${when(d.updated_at)} by ${d.updated_by}`),
      h("td", {}, h("a", { href: `#/deployments/${seg(d.name)}/monitoring` }, "monitoring")),
    ),
  );
  replace(
    root,
    h("h1", {}, "Deployments"),
    deployments.length
      ? table(["Endpoint", "Policy", "Stage", "Revision", "Serving", "Updated", ""], rows, { id: "deployments", class: "grid" })
      : h("p", { class: "muted" }, "No deployments yet: loopstack deploy create <name> <model>@<alias>."),
  );
}

function canaryEditor(deployment, arm, rerender) {
  const input = h("input", {
    type: "number",
    id: "canary-weight",
    "aria-label": "canary weight (%)",
    min: 0,
    max: 100,
    step: "any",
    value: String(arm.weight),
    class: "weight",
  });
  const error = h("span", { id: "canary-error", class: "error", role: "alert" });
  const save = h("button", { type: "submit", id: "save-weight" }, "Save");
  const form = h(
    "form",
    {
      class: "weight-editor",
      onsubmit: async (event) => {
        event.preventDefault();
        save.disabled = true;
        error.textContent = "";
        try {
          await api("POST", `api/v1/deployments/${seg(deployment.name)}/canary`, {
            model: modelRef(arm),
            weight: Number(input.value),
          });
          await rerender();
        } catch (err) {
          error.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err);
          save.disabled = false;
        }
      },
    },
    input,
    " % ",
    save,
    " ",
    error,
  );
  return form;
}

function armsTable(deployment, rerender) {
  const rows = deployment.arms.map((a) =>
    h(
      "tr",
      { "data-arm": a.name, "data-role": a.role },
      h("td", {}, a.name),
      h("td", {}, a.role),
      h("td", { class: "mono" }, h("a", { href: `#/models/${seg(a.model)}` }, modelRef(a))),
      h("td", { class: "num" }, a.version === null || a.version === undefined ? "" : `v${a.version}`),
      h("td", { class: "num weight" }, a.role === "canary" ? canaryEditor(deployment, a, rerender) : `${number(a.weight)} %`),
    ),
  );
  return table(["Arm", "Role", "Model", "Resolved", "Traffic"], rows, { id: "arms", class: "grid" });
}

function historyTable(revisions) {
  const rows = [...revisions].reverse().map((r) =>
    h(
      "tr",
      { "data-revision": r.revision },
      h("td", { class: "num" }, r.revision),
      h("td", {}, r.action),
      h("td", {}, r.policy),
      h("td", {}, r.stage),
      h("td", {}, armsSummary(r.arms)),
      h("td", {}, r.actor),
      h("td", {}, when(r.ts)),
      h("td", {}, r.comment),
    ),
  );
  return table(["Revision", "Change", "Policy", "Stage", "Arms", "By", "When", "Comment"], rows, {
    id: "revisions",
    class: "grid",
  });
}

function banditTable(arms) {
  const rows = Object.values(arms).map((s) =>
    h(
      "tr",
      { "data-arm": s.arm },
      h("td", {}, s.arm),
      h("td", { class: "num" }, s.pulls),
      h("td", { class: "num" }, number(s.mean)),
      h("td", { class: "num" }, `Beta(${number(s.alpha)}, ${number(s.beta)})`),
    ),
  );
  return table(["Arm", "Pulls", "Mean reward", "Posterior"], rows, { id: "bandit", class: "grid" });
}

/** #/deployments/<name>: an endpoint's policy, arms, weights and revisions. */
export async function deploymentPage(root, route) {
  const { name } = route.params;
  const rerender = async () => {
    const fresh = h("div");
    await deploymentPage(fresh, route);
    replace(root, ...fresh.childNodes);
  };
  const [deployment, { revisions }] = await Promise.all([
    api("GET", `api/v1/deployments/${seg(name)}`),
    api("GET", `api/v1/deployments/${seg(name)}/history`),
  ]);
  const bandit = deployment.policy === "bandit" ? (await api("GET", `api/v1/deployments/${seg(name)}/bandit`)).arms : null;
  const options = Object.keys(deployment.options || {}).length ? JSON.stringify(deployment.options) : "none";
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/deployments" }, "Deployments"), " /"),
    h("h1", { id: "deployment-name" }, deployment.name),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Policy"),
      h("dd", { id: "policy" }, deployment.policy),
      h("dt", {}, "Stage"),
      h("dd", {}, deployment.stage),
      h("dt", {}, "Revision"),
      h("dd", { id: "revision" }, deployment.revision),
      h("dt", {}, "Updated"),
      h("dd", {}, `${when(deployment.updated_at)} by ${deployment.updated_by}`),
      h("dt", {}, "Options"),
      h("dd", { class: "mono" }, options),
      h("dt", {}, "Monitoring"),
      h("dd", {}, h("a", { href: `#/deployments/${seg(name)}/monitoring` }, "drift and alerts")),
    ),
    h("h2", {}, "Arms"),
    armsTable(deployment, rerender),
    liveSection(deployment),
    bandit ? [h("h2", {}, "Bandit estimates"), banditTable(bandit)] : null,
    h("h2", {}, "Revisions"),
    historyTable(revisions),
  );
}
