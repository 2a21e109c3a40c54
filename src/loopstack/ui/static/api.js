// The one place the page talks to the server: the token (when auth is on), the project
// chosen in the header, and the server's errors turned into ApiError with its message.
// The server checks every call against the caller's role; nothing is decided here.

const TOKEN_KEY = "loopstack.token";
const PROJECT_KEY = "loopstack.project";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field || null;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export function project() {
  return localStorage.getItem(PROJECT_KEY) || "";
}

export function setProject(name) {
  if (name) localStorage.setItem(PROJECT_KEY, name);
  else localStorage.removeItem(PROJECT_KEY);
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  const p = project();
  if (p) out["X-Loopstack-Project"] = p;
  return out;
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  let field = null;
  try {
    const body = await res.json();
    message = body.message || body.error || message;
    field = body.field || null;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message, field);
}

/** Call the API: api("GET", "api/v1/experiments") or api("POST", path, body) -> JSON. */
export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  return res.json();
}

/** A file from the API as a Blob (with the token, which a plain link would not send). */
export async function apiBlob(path) {
  const res = await fetch(path, { headers: headers({ Accept: "*/*" }) });
  if (!res.ok) throw await failure(res);
  return res.blob();
}

/** A path segment, escaped: a run id or a metric key inside a URL. */
export function seg(value) {
  return encodeURIComponent(String(value));
}
