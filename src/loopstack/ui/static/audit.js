// The audit log (#/audit?before=<seq>): the chain's verification status, shown first,
// and the events the caller may read, newest first, a page at a time. What the server
// refuses this caller (the events need an ml-engineer) is said on the page.
import { api, ApiError, seg } from "./api.js";
import { h, replace, table, when } from "./dom.js";

const PAGE = 50;

/** The verification result in words and a state: verified, broken, refused. */
export function verdict(result) {
  if (result.ok) {
    const legacy = result.legacy ? ` (${result.legacy} legacy, unkeyed)` : "";
    return { state: "verified", text: `Chain verified OK: ${result.checked} events checked${legacy}.` };
  }
  const where = result.broken_seq === null || result.broken_seq === undefined ? "outside the events you may read" : `at event ${result.broken_seq}`;
  const reason = result.reason || "no reason given";
  return { state: "broken", text: `Chain BROKEN ${where}: ${reason}${/[.!?]$/.test(reason) ? "" : "."}` };
}

/** The UI page of an audited object, or null: a dataset version, a feature view, a
 * model (its versions' events too: "name/3"), a deployment, an experiment. */
export function objectHref(type, id) {
  const text = String(id);
  const slash = text.lastIndexOf("/");
  const versioned = slash > 0 && /^\d+$/.test(text.slice(slash + 1));
  if (type === "dataset" && versioned) return `#/datasets/${seg(text.slice(0, slash))}/${text.slice(slash + 1)}`;
  if (type === "feature_view") return `#/features/${seg(text)}`;
  if (type === "model") return `#/models/${seg(versioned ? text.slice(0, slash) : text)}`;
  if (type === "deployment") return `#/deployments/${seg(text)}`;
  if (type === "experiment") return `#/experiments/${seg(text)}`;
  return null;
}

async function refusedOr(call) {
  try {
    return { answer: await call() };
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 400)) return { refused: `${err.status}: ${err.message}` };
    throw err;
  }
}

function status(got) {
  if (got.refused) return h("div", { id: "audit-status", class: "audit-status refused", role: "alert" }, `Verification refused: ${got.refused}`);
  const v = verdict(got.answer);
  return h("div", { id: "audit-status", class: `audit-status ${v.state}`, role: v.state === "broken" ? "alert" : "status", "data-state": v.state }, v.text);
}

function objectCell(e) {
  const href = objectHref(e.object_type, e.object_id);
  return [`${e.object_type} `, href ? h("a", { href }, e.object_id) : e.object_id];
}

function eventsTable(events, brokenSeq) {
  const rows = events.map((e) =>
    h(
      "tr",
      { "data-seq": e.seq, class: e.seq === brokenSeq ? "broken" : "" },
      h("td", { class: "num" }, String(e.seq)),
      h("td", {}, when(e.ts)),
      h("td", {}, e.actor),
      h("td", { class: "mono" }, e.action),
      h("td", { class: "mono" }, objectCell(e)),
    ),
  );
  return table(["#", "Time", "Actor", "Action", "Object"], rows, { id: "audit-events", class: "grid" });
}

/** #/audit: verification status and the newest events (older pages by ?before=<seq>). */
export async function auditPage(root, route) {
  const before = route.query.get("before");
  const size = Math.min(1000, Math.max(1, Number(route.query.get("size")) || PAGE));
  const params = new URLSearchParams({ limit: String(size) });
  if (before) params.set("before", before);
  const [checked, listed] = await Promise.all([
    refusedOr(() => api("GET", "api/v1/audit/verify")),
    refusedOr(() => api("GET", `api/v1/audit/events?${params}`)),
  ]);
  const brokenSeq = checked.answer && !checked.answer.ok ? checked.answer.broken_seq : null;
  let body;
  if (listed.refused) {
    body = h("p", { id: "audit-refused", class: "error", role: "alert" }, `The server refuses you the events: ${listed.refused}`);
  } else {
    const events = [...listed.answer.events].reverse(); // the API gives oldest first
    const oldest = events.length ? events[events.length - 1].seq : null;
    body = [
      events.length ? eventsTable(events, brokenSeq) : h("p", { id: "no-events", class: "muted" }, before ? `No events before #${before}.` : "No events yet."),
      h(
        "div",
        { class: "pager" },
        before ? h("a", { id: "newest", href: "#/audit" }, "Newest") : null,
        oldest !== null && oldest > 1 && events.length === size ? h("a", { id: "older", href: `#/audit?before=${oldest}${size !== PAGE ? `&size=${size}` : ""}` }, "Older") : null,
      ),
    ];
  }
  replace(root, h("h1", {}, "Audit log"), status(checked), body);
}
