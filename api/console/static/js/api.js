// The HTTP API from the browser: the key lives in sessionStorage and travels only in the Authorization header.

const KEY_SLOT = "tensorq.key";
const API_ROOT = new URL("../", document.baseURI); // the console lives at <root>/console/

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_SLOT, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_SLOT);
}

function urlOf(path, params) {
  const url = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = (body && body.error) || {};
  return new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText, error.details);
}

// One request; `key` overrides the stored key (used to check a key before keeping it); `accept` the answer's type.
export async function request(method, path, { params, json, form, signal, key, accept } = {}) {
  const headers = { Accept: accept || "application/json" };
  const secret = key || storedKey();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(urlOf(path, params), {
    method,
    headers,
    body,
    signal,
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJson(path, options = {}) {
  return (await request("GET", path, options)).json();
}

export async function postJson(path, json, options = {}) {
  return (await request("POST", path, { ...options, json })).json();
}

// A binary answer (an artifact, a model file) as a Blob, fetched with the key.
export async function getBlob(path, options = {}) {
  return (await request("GET", path, options)).blob();
}

// The JSON at `path`, or null when the API answers with one of `statuses`.
async function jsonUnless(statuses, path, options) {
  try {
    return await getJson(path, options);
  } catch (error) {
    if (error instanceof ApiError && statuses.includes(error.status)) return null;
    throw error;
  }
}

// The JSON of an optional endpoint, or null when this server does not have it (404 or 405).
export async function optionalJson(path, options = {}) {
  return jsonUnless([404, 405], path, options);
}

// The JSON of one job, dataset or model, or null when the tenant has none by that id (404).
export async function foundJson(path, options = {}) {
  return jsonUnless([404], path, options);
}

export async function putJson(path, json, options = {}) {
  return (await request("PUT", path, { ...options, json })).json();
}

export async function deleteJson(path, options = {}) {
  return (await request("DELETE", path, options)).json();
}

// Server-Sent Events from `path` (read through fetch: an EventSource cannot send the key's header): calls
// `onData` with each event's parsed JSON data, in order, until the server ends the stream.
export async function followEvents(path, onData, { signal } = {}) {
  const response = await request("GET", path, { signal, accept: "text/event-stream" });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (data) await onData(JSON.parse(data));
      end = buffer.indexOf("\n\n");
    }
  }
}
