// The UI's entry: the session in the header (who, which project, sign in and out) and the
// hash router. The links the MLflow client prints land here:
//   #/experiments/<id>                 an experiment's runs
//   #/experiments/<id>/runs/<run_id>   one run
//   #/compare?experiment=<id>&runs=<run_id>,<run_id>   runs side by side
import { api, ApiError, project, setProject, setToken, token } from "./api.js";
import { auditPage } from "./audit.js";
import { comparePage } from "./compare.js";
import { datasetPage, datasetsPage } from "./data.js";
import { h, replace } from "./dom.js";
import { deploymentPage, deploymentsPage } from "./deployments.js";
import { experimentsPage } from "./experiments.js";
import { featurePage, featuresPage } from "./features.js";
import { modelPage, modelsPage } from "./models.js";
import { monitoringPage } from "./monitoring.js";
import { pipelineRunPage, pipelinesPage } from "./pipelines.js";
import { runPage } from "./run.js";
import { parseRoute } from "./routes.js";
import { runsPage } from "./runs.js";

const main = document.getElementById("main");
const session = document.getElementById("session");
let generation = 0; // a newer navigation wins over a page still loading

const PAGES = {
  experiments: experimentsPage,
  runs: runsPage,
  run: runPage,
  compare: comparePage,
  models: modelsPage,
  model: modelPage,
  deployments: deploymentsPage,
  deployment: deploymentPage,
  monitoring: monitoringPage,
  datasets: datasetsPage,
  dataset: datasetPage,
  features: featuresPage,
  feature: featurePage,
  audit: auditPage,
  pipelines: pipelinesPage,
  pipelineRun: pipelineRunPage,
  missing: async (root, route) => {
    replace(root, h("h1", {}, "No such page"), h("p", {}, `Nothing lives at #${route.params.path}. `, h("a", { href: "#/" }, "See the experiments.")));
  },
};

/** Go to a route of the UI (a hash such as "#/experiments/1?filter=..."). */
export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function loginPage(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "paste a token", size: 48 });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    {
      class: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        setToken(input.value.trim());
        await start();
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server has auth on. Sign in with a token (", h("code", {}, "loopstack token create"), ")."),
    h("label", { for: "token" }, "Token "),
    input,
    h("button", { type: "submit" }, "Sign in"),
    error,
  );
  replace(main, form);
  replace(session);
  input.focus();
}

async function sessionHeader(me) {
  let projects = [];
  try {
    projects = (await api("GET", "api/v1/projects")).projects || [];
  } catch {
    projects = [];
  }
  const chosen = project() || (projects.find((p) => p.project_id === me.project_id) || {}).name || "default";
  const select = h(
    "select",
    {
      id: "project",
      "aria-label": "project",
      onchange: () => {
        setProject(select.value === "default" ? "" : select.value);
        start();
      },
    },
    projects.map((p) => h("option", { value: p.name, selected: p.name === chosen }, p.name)),
  );
  replace(
    session,
    projects.length > 1 ? h("label", {}, "Project ", select) : h("span", { class: "muted" }, `project ${chosen}`),
    h("span", { id: "who", class: "who" }, me.user, me.role ? ` (${me.role})` : ""),
    token()
      ? h("button", { type: "button", id: "sign-out", onclick: () => { setToken(""); setProject(""); start(); } }, "Sign out")
      : null,
  );
}

async function render() {
  const mine = ++generation;
  const route = parseRoute(location.hash);
  const root = h("div", { class: "page", "data-page": route.page });
  replace(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await PAGES[route.page](root, route, { navigate });
    if (mine === generation) replace(main, root);
  } catch (err) {
    if (mine !== generation) return;
    if (err instanceof ApiError && err.status === 401) {
      loginPage(err.message);
      return;
    }
    replace(main, h("div", { class: "error", role: "alert" }, err instanceof ApiError ? `${err.status}: ${err.message}` : String(err)));
  }
}

async function start() {
  // the page and the caller's identity at once: the page need not wait for the header
  // (a refused token fails both; the page's result is then dropped below)
  const page = render();
  let me;
  try {
    me = await api("GET", "api/v1/whoami");
  } catch (err) {
    generation += 1; // the page loading meanwhile is not shown
    if (err instanceof ApiError && err.status === 401) {
      const hadToken = Boolean(token());
      setToken("");
      loginPage(hadToken ? err.message : "");
      return;
    }
    if (err instanceof ApiError && err.status === 404 && project()) {
      setProject(""); // the project chosen earlier is gone or not ours: back to the default
      return start();
    }
    replace(main, h("div", { class: "error", role: "alert" }, String(err.message || err)));
    return;
  }
  await Promise.all([sessionHeader(me), page]);
}

window.addEventListener("hashchange", render);
start();
