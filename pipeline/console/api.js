// The API client: the credential (session storage), the tenant header, JSON calls, DOM helpers.

const CREDENTIAL_KEY = "securewatch.credential";
const TENANT_KEY = "securewatch.tenant";

export const session = {
  get credential() { return sessionStorage.getItem(CREDENTIAL_KEY); },
  set credential(value) { value ? sessionStorage.setItem(CREDENTIAL_KEY, value) : sessionStorage.removeItem(CREDENTIAL_KEY); },
  get tenant() { return sessionStorage.getItem(TENANT_KEY) || ""; },
  set tenant(value) { value ? sessionStorage.setItem(TENANT_KEY, value) : sessionStorage.removeItem(TENANT_KEY); },
  identity: null,
  can(permission) { return !!this.identity && this.identity.permissions.includes(permission); },
};

export class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

function headers(extra) {
  const result = { Authorization: `Bearer ${session.credential}`, ...extra };
  if (session.tenant) result["X-SecureWatch-Tenant"] = session.tenant;
  return result;
}

// A call answered with JSON (or text when `raw`); a non-2xx answer throws ApiError with the
// API's `error` message and the parsed body (a refused reload or a failed job carries details).
export async function call(method, path, body, { raw = false } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  let parsed = null;
  if (!raw && text) {
    try { parsed = JSON.parse(text); } catch { parsed = null; }
  }
  if (!response.ok) {
    const message = (parsed && parsed.error) || text || response.statusText;
    if (response.status === 401) window.dispatchEvent(new CustomEvent("securewatch:unauthorized"));
    throw new ApiError(response.status, `${response.status}: ${message}`, parsed);
  }
  return raw ? { text, headers: response.headers } : parsed;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== "") search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

// A job's WebSocket: the credential rides as the second offered subprotocol (a browser cannot
// send an Authorization header on a WebSocket); the server answers with the first only.
export function jobSocket(id) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return new WebSocket(`${scheme}//${location.host}/api/v1/jobs/${encodeURIComponent(id)}/ws`, ["securewatch.bearer", session.credential]);
}

// Prometheus text → [{name, labels, value}] (the samples the console reads).
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

// el("td", {class: "x"}, "text", child...): an element; text is always set as text, never HTML.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
}

export function time(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function showError(error) {
  const toast = document.getElementById("toast");
  toast.textContent = error ? String(error.message || error) : "";
}

// Downloads `text` as a file (a Blob URL: allowed by the CSP, nothing leaves the browser).
export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
