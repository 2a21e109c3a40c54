// The UI's routes, read from the part of the address after "#". The links the MLflow
// client prints are among them: #/experiments/<id> and #/experiments/<id>/runs/<run_id>.

function decoded(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // a stray "%": the text as written
  }
}

/** "#/experiments/1/runs/ab?x=1" -> {page: "run", params: {experimentId, runId}, query}. */
export function parseRoute(hash) {
  const raw = (hash || "").replace(/^#/, "");
  const cut = raw.indexOf("?");
  const [path, search] = cut === -1 ? [raw, ""] : [raw.slice(0, cut), raw.slice(cut + 1)];
  const parts = path.split("/").filter(Boolean).map(decoded);
  const query = new URLSearchParams(search);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "experiments")) {
    return { page: "experiments", params: {}, query };
  }
  if (parts[0] === "experiments" && parts.length >= 2) {
    const experimentId = parts[1];
    if (parts[2] === "runs" && parts.length >= 4) {
      return { page: "run", params: { experimentId, runId: parts[3] }, query };
    }
    // #/experiments/<id>, and the MLflow UI's tabs of it (/overview, /runs, ...)
    return { page: "runs", params: { experimentId }, query };
  }
  if (parts.length === 1 && parts[0] === "compare") return { page: "compare", params: {}, query };
  // the model registry, the deployments and an endpoint's monitoring
  if (parts[0] === "models" && parts.length <= 2) {
    return parts.length === 1 ? { page: "models", params: {}, query } : { page: "model", params: { name: parts[1] }, query };
  }
  if (parts[0] === "deployments" && parts.length <= 3) {
    if (parts.length === 1) return { page: "deployments", params: {}, query };
    if (parts.length === 2) return { page: "deployment", params: { name: parts[1] }, query };
    if (parts[2] === "monitoring") return { page: "monitoring", params: { name: parts[1] }, query };
  }
  // datasets, feature views and the audit log
  if (parts[0] === "datasets" && parts.length <= 3) {
    if (parts.length === 1) return { page: "datasets", params: {}, query };
    return { page: "dataset", params: { name: parts[1], version: parts[2] || null }, query };
  }
  if (parts[0] === "features" && parts.length <= 2) {
    return parts.length === 1 ? { page: "features", params: {}, query } : { page: "feature", params: { name: parts[1] }, query };
  }
  if (parts.length === 1 && parts[0] === "audit") return { page: "audit", params: {}, query };
  // pipeline runs and one run's graph
  if (parts[0] === "pipelines" && parts.length <= 2) {
    return parts.length === 1 ? { page: "pipelines", params: {}, query } : { page: "pipelineRun", params: { runUuid: parts[1] }, query };
  }
  return { page: "missing", params: { path }, query };
}

