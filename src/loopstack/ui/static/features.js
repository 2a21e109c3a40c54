// The feature views (#/features) and one view (#/features/<view>): entity, features and
// their types, TTL, source, versions, and freshness: when the online store was last
// materialized, its newest event, and "stale" when that is older than the view's TTL.
import { api, seg } from "./api.js";
import { duration, h, replace, table, when } from "./dom.js";

/** A TTL or lag in seconds as "1 h 5 min"; none as "none". */
export function seconds(value) {
  if (value === null || value === undefined) return "none";
  return duration(Math.round(value * 1000));
}

/** The freshness of a view in words and a class: stale, fresh, never materialized. */
export function freshnessVerdict(f) {
  if (!f) return { text: "on demand (computed at read time)", state: "none" };
  if (f.lag_seconds === null || f.lag_seconds === undefined) return { text: "never materialized", state: "never" };
  const lag = `${seconds(f.lag_seconds)} old`;
  if (f.stale) return { text: `stale: ${lag}, past its TTL of ${seconds(f.ttl_seconds)}`, state: "stale" };
  if (f.ttl_seconds === null || f.ttl_seconds === undefined) return { text: `${lag} (no TTL)`, state: "fresh" };
  return { text: `fresh: ${lag}, within its TTL of ${seconds(f.ttl_seconds)}`, state: "fresh" };
}

function source(def) {
  const src = def.source || {};
  const where = src.path || src.url || src.location || src.name || "";
  return `${src.kind || def.type || "?"}${where ? ` ${where}` : ""}`;
}

function entities(def) {
  return (def.entities || []).map((e) => (typeof e === "string" ? e : e.name)).join(", ");
}

function epochSeconds(ts) {
  return ts === null || ts === undefined ? "" : when(ts * 1000);
}

function verdictCell(f) {
  const v = freshnessVerdict(f);
  return h("td", { class: `freshness ${v.state}` }, v.text);
}

/** #/features: every feature view's newest version with its freshness. */
export async function featuresPage(root) {
  const [{ views }, { views: fresh }] = await Promise.all([api("GET", "api/v1/features/views"), api("GET", "api/v1/features/freshness")]);
  const byView = Object.fromEntries(fresh.map((f) => [f.view, f]));
  const rows = views.map((v) => {
    const def = v.definition;
    const f = byView[v.name];
    return h(
      "tr",
      { "data-view": v.name, class: f && f.stale ? "stale" : "" },
      h("td", {}, h("a", { href: `#/features/${seg(v.name)}` }, v.name)),
      h("td", { class: "num" }, `v${v.version}`),
      h("td", {}, entities(def)),
      h("td", {}, (def.schema || def.features || []).map((x) => x.name).join(", ")),
      h("td", {}, def.ttl_seconds === undefined ? "" : seconds(def.ttl_seconds)),
      h("td", { class: "mono" }, source(def)),
      h("td", { class: "num" }, f ? String(f.rows) : ""),
      h("td", {}, f ? epochSeconds(f.newest_event_ts) : ""),
      h("td", {}, f ? epochSeconds(f.last_materialized_end) : ""),
      verdictCell(f),
    );
  });
  replace(
    root,
    h("h1", {}, "Feature views"),
    views.length
      ? h(
          "div",
          { class: "scroll" },
          table(["View", "Version", "Entities", "Features", "TTL", "Source", "Online rows", "Newest event", "Last materialized", "Freshness"], rows, {
            id: "views",
            class: "grid",
          }),
        )
      : h("p", { id: "no-views", class: "muted" }, "No feature views in this project yet (", h("code", {}, "FeatureStore().apply([...])"), ")."),
  );
}

/** #/features/<view>: one view's features, versions and freshness. */
export async function featurePage(root, route) {
  const { name } = route.params;
  const [view, { versions }] = await Promise.all([api("GET", `api/v1/features/views/${seg(name)}`), api("GET", `api/v1/features/views/${seg(name)}/versions`)]);
  // an on-demand view is computed at read time: nothing online to be fresh or stale
  const f = view.kind === "on_demand" ? null : (await api("GET", `api/v1/features/freshness?view=${seg(name)}`)).views[0];
  const def = view.definition;
  const verdict = freshnessVerdict(f);
  const features = (def.schema || def.features || []).map((x) =>
    h(
      "tr",
      { "data-feature": x.name },
      h("td", {}, x.name),
      h("td", { class: "mono" }, x.dtype || ""),
      h("td", { class: "num" }, f && f.null_rate && x.name in f.null_rate ? `${(f.null_rate[x.name] * 100).toFixed(1)} %` : ""),
    ),
  );
  const history = [...versions].reverse().map((v) =>
    h("tr", { "data-version": v.version }, h("td", {}, `v${v.version}`), h("td", { class: "mono" }, v.digest.slice(0, 12)), h("td", {}, v.created_by), h("td", {}, when(v.created_at))),
  );
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/features" }, "Feature views"), " / ", name),
    h("h1", { id: "view-name" }, name),
    h("p", { id: "freshness", class: `freshness ${verdict.state}`, role: verdict.state === "stale" ? "alert" : null }, verdict.text),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Version"),
      h("dd", {}, `v${view.version}`),
      h("dt", {}, "Entities"),
      h("dd", {}, entities(def)),
      def.join_keys ? [h("dt", {}, "Join keys"), h("dd", { class: "mono" }, def.join_keys.join(", "))] : null,
      def.timestamp_field ? [h("dt", {}, "Event timestamp"), h("dd", { class: "mono" }, def.timestamp_field)] : null,
      h("dt", {}, "TTL"),
      h("dd", { id: "ttl" }, seconds(def.ttl_seconds)),
      h("dt", {}, "Source"),
      h("dd", { class: "mono" }, source(def)),
      f ? [h("dt", {}, "Online rows"), h("dd", { id: "online-rows" }, String(f.rows))] : null,
      f ? [h("dt", {}, "Newest event"), h("dd", {}, epochSeconds(f.newest_event_ts) || "none")] : null,
      f ? [h("dt", {}, "Last materialized"), h("dd", {}, epochSeconds(f.last_materialized_end) || "never")] : null,
      view.owner ? [h("dt", {}, "Owner"), h("dd", {}, view.owner)] : null,
      def.description ? [h("dt", {}, "Description"), h("dd", {}, def.description)] : null,
    ),
    h("h2", {}, "Features"),
    table(["Feature", "Type", "Null rate online"], features, { id: "features", class: "grid" }),
    h("h2", {}, "Versions"),
    table(["Version", "Digest", "By", "Created"], history, { id: "versions", class: "grid" }),
  );
}
