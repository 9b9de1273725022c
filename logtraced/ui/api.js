// The only way the console talks to the daemon: the documented API, with the signed-in key as a
// Bearer header. The key lives in session storage (gone when the tab closes), never in a URL, a
// cookie or the console's own logs.

const STORAGE_KEY = "logtraced.key";

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(STORAGE_KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(STORAGE_KEY, value);
    else sessionStorage.removeItem(STORAGE_KEY);
  },
  me: null,
};

async function send(method, path, { body, params, signal, key, accept } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Authorization: `Bearer ${key ?? session.key ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers.Accept = accept;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) {
    const payload = await response.json().catch(() => null);
    const error = payload && payload.error ? payload.error : { code: "http_error", message: response.statusText };
    if (response.status === 401 && !key) window.dispatchEvent(new CustomEvent("signed-out", { detail: error.message }));
    throw new ApiError(response.status, error.code, error.message, payload);
  }
  return response;
}

export async function call(method, path, options = {}) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  return response.json().catch(() => null);
}

// The live tail's event stream: the response itself, whose body the caller reads as it arrives.
export const tailStream = (params, signal) => send("GET", "/v1/logs/tail", { params, signal, accept: "text/event-stream" });

const LOGS = (org) => `/api/v4/organizations/${encodeURIComponent(org)}/logs/api`;

export const api = {
  whoami: (key) => call("GET", "/v1/whoami", { key }),
  health: () => call("GET", "/v1/health"),
  query: (body, signal) => call("POST", "/v1/logs/query", { body, signal }),
  queryRange: (org, pipeline, params, signal) =>
    call("POST", `${LOGS(org)}/v2/query_range/json`, { body: { pipeline }, params, signal }),
  labelValues: (org, name, params, signal) =>
    call("GET", `${LOGS(org)}/v1/label/${encodeURIComponent(name)}/values`, { params, signal }),
  keys: () => call("GET", "/v1/keys"),
  createKey: (body) => call("POST", "/v1/keys", { body }),
  revokeKey: (id) => call("DELETE", `/v1/keys/${encodeURIComponent(id)}`),
  usage: (params) => call("GET", "/v1/usage", { params }),
  insights: (body, signal) => call("POST", "/v1/logs/insights", { body, signal }),
};
