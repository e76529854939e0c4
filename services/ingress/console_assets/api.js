// The console's only source of data: the Studio v2 REST API on this origin, with the Basic-auth credentials
// the user typed into the login form. They live in sessionStorage: per tab, gone when the tab closes, never
// written to a cookie (so no other site can make the browser send them).

const KEY = "switchboard.console.auth";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function base64(text) {
  // btoa only takes Latin-1; encode to UTF-8 first so any password works
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

export function signedInAs() {
  const raw = sessionStorage.getItem(KEY);
  return raw ? JSON.parse(raw).user : null;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

function header() {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) throw new AuthError("not signed in");
  return "Basic " + JSON.parse(raw).token;
}

/** GET a path of the REST API (e.g. "/v2/Flows?PageSize=50"); the parsed JSON or an ApiError/AuthError. */
export async function get(path) {
  const response = await fetch(path, {headers: {Authorization: header(), Accept: "application/json"},
                                      credentials: "omit", cache: "no-store"});
  if (response.status === 401) {
    signOut();
    throw new AuthError("the credentials were refused");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** Check the credentials against the API and keep them for this tab. */
export async function signIn(user, password) {
  const token = base64(`${user}:${password}`);
  const response = await fetch("/v2/Flows?PageSize=1", {headers: {Authorization: "Basic " + token},
                                                         credentials: "omit", cache: "no-store"});
  if (response.status === 401) throw new AuthError("Those credentials were refused.");
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  sessionStorage.setItem(KEY, JSON.stringify({user, token}));
}

/** The path and query of an API URL from a response (next_page_url…), so calls stay on this origin. */
export function localPath(url) {
  if (!url) return null;
  const parsed = new URL(url, location.origin);
  return parsed.pathname + parsed.search;
}

const enc = encodeURIComponent;
export const paths = {
  flows: (query) => "/v2/Flows" + (query ? "?" + new URLSearchParams(query) : ""),
  flow: (sid) => `/v2/Flows/${enc(sid)}`,
  revision: (sid, n) => `/v2/Flows/${enc(sid)}/Revisions/${enc(n)}`,
  revisions: (sid) => `/v2/Flows/${enc(sid)}/Revisions?PageSize=100`,
  executions: (sid, query) => `/v2/Flows/${enc(sid)}/Executions` + (query ? "?" + new URLSearchParams(query) : ""),
  execution: (sid, fn) => `/v2/Flows/${enc(sid)}/Executions/${enc(fn)}`,
  context: (sid, fn) => `/v2/Flows/${enc(sid)}/Executions/${enc(fn)}/Context`,
  steps: (sid, fn) => `/v2/Flows/${enc(sid)}/Executions/${enc(fn)}/Steps?PageSize=1000`,
  stepContext: (sid, fn, ft) => `/v2/Flows/${enc(sid)}/Executions/${enc(fn)}/Steps/${enc(ft)}/Context`,
};
