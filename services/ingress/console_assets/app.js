// The console's router: #/flows, #/flows/FW…, #/flows/FW…/executions, #/flows/FW…/executions/FN….
// Each navigation gets a fresh context; a page that is still loading when the user moves on finds itself
// no longer alive and mounts nothing, and its polling timers are cleared.

import {ApiError, AuthError, signIn, signOut, signedInAs} from "./api.js";
import {h, link, mount} from "./dom.js";
import {executionPage} from "./page_execution.js";
import {executionsPage} from "./page_executions.js";
import {flowPage} from "./page_flow.js";
import {flowsPage} from "./page_flows.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const who = document.getElementById("who");
let generation = 0;
let timers = [];

function parse(hash) {
  const [path, search] = hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return {parts, query: Object.fromEntries(new URLSearchParams(search || ""))};
}

function context(id) {
  return {
    alive: () => id === generation,
    show: (...children) => { if (id === generation) mount(main, ...children); },
    title: (text) => { if (id === generation) document.title = `${text} · Switchboard console`; },
    crumbs: (items) => {
      if (id !== generation) return;
      mount(crumbs, items.map(([text, segments], i) => [i ? h("span", {class: "sep"}, "›") : null,
        segments ? link(segments, text) : h("span", {}, text)]));
    },
    /** Run fn every ms while this page is shown and the tab visible; returns a function that stops it. */
    every: (ms, fn) => {
      let busy = false;
      const timer = setInterval(async () => {
        if (id !== generation || busy || document.visibilityState === "hidden") return;
        busy = true;
        try {
          await fn();
          notice("");
        } catch (error) {
          // a failed refresh keeps what is shown (the engine may be restarting) and says so until one succeeds
          if (error instanceof AuthError) report(error, id);
          else if (id === generation) notice(`Live updates paused: ${error.message}. Retrying…`);
        } finally { busy = false; }
      }, ms);
      timers.push(timer);
      return () => clearInterval(timer);
    },
  };
}

function notice(text) {
  let bar = document.getElementById("notice");
  if (!text) { if (bar) bar.remove(); return; }
  if (!bar) { bar = h("p", {id: "notice", class: "notice", role: "status"}); main.prepend(bar); }
  bar.textContent = text;
}

function report(error, id) {
  if (id !== generation) return;
  if (error instanceof AuthError) { route(error.message); return; }
  const text = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error && error.message || error);
  mount(main, h("div", {class: "error", role: "alert"}, h("strong", {}, "Could not load this page. "), text));
}

function renderWho() {
  const user = signedInAs();
  mount(who, user ? [h("span", {class: "muted"}, user), " ",
    h("button", {type: "button", class: "small", id: "sign-out", onclick: () => { signOut(); route(); }}, "Sign out")] : null);
}

function loginPage(message) {
  document.title = "Sign in · Switchboard console";
  mount(crumbs);
  const user = h("input", {name: "user", id: "login-user", autocomplete: "username", required: true,
                           placeholder: "AC… or SK…"});
  const password = h("input", {name: "password", id: "login-password", type: "password", autocomplete: "current-password",
                               required: true});
  const problem = h("p", {class: "error", role: "alert", hidden: !message}, message || "");
  mount(main, h("form", {class: "login", id: "login", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await signIn(user.value.trim(), password.value);
      route();
    } catch (error) {
      problem.hidden = false;
      problem.textContent = error instanceof AuthError ? error.message : `Sign-in failed: ${error.message}`;
    }
  }},
  h("h1", {}, "Sign in"),
  h("p", {class: "muted"}, "The REST API's credentials: the account SID and auth token, or an API key and secret. "
    + "They are kept in this tab only (sessionStorage) and sent with each API request."),
  h("label", {}, "Account SID or API key", user), h("label", {}, "Auth token or secret", password),
  problem, h("button", {type: "submit"}, "Sign in")));
}

async function route(message) {
  generation += 1;
  const id = generation;
  timers.forEach(clearInterval);
  timers = [];
  renderWho();
  if (!signedInAs()) { loginPage(message); return; }
  const {parts, query} = parse(location.hash);
  const ctx = context(id);
  document.title = "Switchboard console";
  mount(main, h("p", {class: "muted loading"}, "Loading…"));
  try {
    if (parts.length === 0 || (parts[0] === "flows" && parts.length === 1)) await flowsPage(ctx, query);
    else if (parts[0] === "flows" && parts.length === 2) await flowPage(ctx, parts[1], query);
    else if (parts[0] === "flows" && parts[2] === "executions" && parts.length === 3) await executionsPage(ctx, parts[1], query);
    else if (parts[0] === "flows" && parts[2] === "executions" && parts.length === 4) await executionPage(ctx, parts[1], parts[3], query);
    else ctx.show(h("p", {class: "error"}, "No such page."), link(["flows"], "All flows"));
  } catch (error) {
    report(error, id);
  }
}

window.addEventListener("hashchange", () => route());
route();
