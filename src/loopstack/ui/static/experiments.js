// The experiments list: each links to its runs page.
import { api } from "./api.js";
import { h, replace, table, when } from "./dom.js";

export async function experimentsPage(root) {
  const { experiments } = await api("GET", "api/v1/experiments?max_results=1000");
  const rows = experiments.map((e) =>
    h(
      "tr",
      { "data-experiment-id": e.experiment_id },
      h("td", {}, h("a", { href: `#/experiments/${encodeURIComponent(e.experiment_id)}` }, e.name)),
      h("td", { class: "mono" }, e.experiment_id),
      h("td", {}, when(e.creation_time)),
      h("td", {}, when(e.last_update_time)),
    ),
  );
  replace(
    root,
    h("h1", {}, "Experiments"),
    experiments.length
      ? table(["Name", "ID", "Created", "Last update"], rows, { id: "experiments", class: "grid" })
      : h("p", { class: "muted" }, "No experiments yet: log a run (mlflow.start_run() or ls.start_run())."),
  );
}
