// Building the page's elements: text always goes in as text (never parsed as HTML), so
// a run name or a param value cannot inject markup.

/** An element: h("a", {href: "#/", class: "x", onclick: fn}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

export function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked" || key === "disabled") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Empty an element and fill it with children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A table: head is a list of header cells (strings or elements) or null for none, rows
 * a list of rows. */
export function table(head, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    head ? h("thead", {}, h("tr", {}, head.map((c) => (c instanceof Node ? c : h("th", {}, c))))) : null,
    h("tbody", {}, rows.map((r) => (r instanceof Node ? r : h("tr", {}, r.map((c) => h("td", {}, c)))))),
  );
}

/** A millisecond timestamp as local date and time, or "" for none. */
export function when(ms) {
  if (ms === null || ms === undefined || ms === 0) return "";
  const d = new Date(Number(ms));
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A duration in milliseconds as "1.2 s", "3 min 4 s", "2 h 5 min". */
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A metric value: up to 6 significant digits; NaN and infinities as the API writes them. */
export function number(value) {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const text = Number(value).toPrecision(6);
  return text.includes("e") ? text : String(Number(text));
}

/** A byte count as "12 B", "3.4 KiB", "5.6 MiB". */
export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Call fn every ms while el is on the page: the timer stops once el has been shown and
 * is gone (its page was left or drawn anew), or at the next change of route. */
export function whileShown(el, ms, fn) {
  let shown = false;
  const stop = () => {
    clearInterval(timer);
    window.removeEventListener("hashchange", stop);
  };
  const timer = setInterval(() => {
    if (el.isConnected) shown = true;
    else if (shown) return stop();
    if (shown) fn(stop);
  }, ms);
  window.addEventListener("hashchange", stop);
  return stop;
}
