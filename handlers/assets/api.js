// The admin API client. Every call asks Atlassian's all.js for a fresh
// context token (AP.context.getToken) and sends it as "Authorization: JWT";
// no token is ever put in a URL or kept by this page.

const app = document.getElementById("app");
const base = app ? app.dataset.api : "/api/admin";

// ApiError is a failed call: message is a sentence for the admin; field,
// when the server names one, is the input it is about.
export class ApiError extends Error {
  constructor(message, { status = 0, field = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
  }
}

export const notInAtlassian =
  "This page works only inside your Atlassian site: open it from the app’s settings in Jira or Confluence administration.";

// hasAP reports whether all.js loaded (or the host provided AP).
export function hasAP() {
  return Boolean(window.AP && window.AP.context && typeof window.AP.context.getToken === "function");
}

function contextToken() {
  return new Promise((resolve, reject) => {
    if (!hasAP()) {
      reject(new ApiError(notInAtlassian));
      return;
    }
    const timer = setTimeout(() => {
      reject(new ApiError("Your Atlassian site did not confirm who you are in time. Reload the page and try again."));
    }, 15000);
    try {
      window.AP.context.getToken((token) => {
        clearTimeout(timer);
        if (typeof token === "string" && token !== "") {
          resolve(token);
        } else {
          reject(new ApiError("Your Atlassian site did not confirm who you are. Reload the page and try again."));
        }
      });
    } catch (err) {
      clearTimeout(timer);
      reject(new ApiError(notInAtlassian));
    }
  });
}

// statusSentence explains an HTTP status when the answer carries no error
// sentence of its own.
function statusSentence(status) {
  switch (status) {
    case 401: return "Your session with idbridge has ended. Reload the page to continue.";
    case 403: return "Only administrators of this site can change idbridge’s settings.";
    case 404: return "This idbridge server does not offer this yet.";
    case 413: return "What you entered is too large to save.";
    case 429: return "Too many requests in a short time. Wait a moment and try again.";
    case 502: case 503: case 504: return "idbridge is unavailable right now. Try again in a minute.";
  }
  if (status >= 500) return "idbridge ran into a problem on its side. Try again; if it keeps happening, contact the app’s support.";
  return "The request failed (HTTP " + status + ").";
}

// request calls the admin API and resolves with the decoded JSON (null for
// an empty answer), or rejects with an ApiError.
// With raw, a successful answer resolves as its text (the CSV export).
export async function request(method, path, body, { timeout = 30000, raw = false } = {}) {
  const token = await contextToken();
  const headers = { "Authorization": "JWT " + token, "Accept": "application/json" };
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const ctrl = new AbortController();
  init.signal = ctrl.signal;
  const timer = setTimeout(() => ctrl.abort(), timeout);
  let res;
  try {
    res = await fetch(base + path, init);
  } catch (err) {
    if (ctrl.signal.aborted) {
      throw new ApiError("idbridge did not answer within " + Math.round(timeout / 1000) + " seconds. Try again.");
    }
    throw new ApiError("idbridge could not be reached. Check your network connection and try again.");
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  const text = await res.text().catch(() => "");
  if (raw && res.ok) return text;
  if (text !== "") {
    try { data = JSON.parse(text); } catch (err) { data = null; }
  }
  if (!res.ok) {
    const message = data && typeof data.error === "string" && data.error !== "" ? data.error : statusSentence(res.status);
    throw new ApiError(message, { status: res.status, field: data && typeof data.field === "string" ? data.field : "" });
  }
  return data;
}

export const get = (path, opts) => request("GET", path, undefined, opts);
export const put = (path, body, opts) => request("PUT", path, body, opts);
export const post = (path, body, opts) => request("POST", path, body, opts);

// download fetches a large answer as a Blob, reading it as it streams in;
// onLines, when given, hears how many lines have arrived so far (the
// privacy export writes one row per line).
export async function download(path, onLines, { timeout = 600000 } = {}) {
  const token = await contextToken();
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeout);
  try {
    let res;
    try {
      res = await fetch(base + path, { headers: { "Authorization": "JWT " + token, "Accept": "application/json" },
        credentials: "omit", cache: "no-store", redirect: "error", signal: ctrl.signal });
    } catch (err) {
      throw new ApiError("idbridge could not be reached. Check your network connection and try again.");
    }
    if (!res.ok) {
      let data = null;
      try { data = JSON.parse(await res.text()); } catch (err) { data = null; }
      const message = data && typeof data.error === "string" && data.error !== "" ? data.error : statusSentence(res.status);
      throw new ApiError(message, { status: res.status, field: data && typeof data.field === "string" ? data.field : "" });
    }
    const reader = res.body.getReader();
    const parts = [];
    let lines = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
      if (onLines) onLines(lines);
    }
    return new Blob(parts, { type: "application/json" });
  } finally {
    clearTimeout(timer);
  }
}

export const del = (path, opts) => request("DELETE", path, undefined, opts);
