// A flow's executions, newest first, with filters: status and creation date (both sent to the API) and contact
// (the API has no contact filter, so the console scans the newest executions and keeps the matching ones).
// The first page refreshes itself while the tab is visible, so new and ending executions show up.

import {get, localPath, paths} from "./api.js";
import {badge, h, link, mount, when} from "./dom.js";

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const SCAN_PAGES = 10;        // contact filter: at most 10 pages of 1,000 executions per view
const MAX_MATCHES = 500;

function token(url) {
  const path = localPath(url);
  return path ? new URLSearchParams(path.split("?")[1] || "").get("PageToken") : null;
}

function apiFilters(query) {
  const out = {};
  if (query.status === "active" || query.status === "ended") out.Status = query.status;
  if (DATE.test(query.from || "")) out.DateCreatedFrom = `${query.from}T00:00:00Z`;
  if (DATE.test(query.to || "")) out.DateCreatedTo = `${query.to}T23:59:59Z`;
  return out;
}

function filterForm(sid, query) {
  const status = h("select", {name: "status", id: "filter-status"},
    [["", "any status"], ["active", "active"], ["ended", "ended"]].map(([value, text]) =>
      h("option", {value, selected: (query.status || "") === value}, text)));
  const from = h("input", {type: "date", name: "from", id: "filter-from", value: query.from || ""});
  const to = h("input", {type: "date", name: "to", id: "filter-to", value: query.to || ""});
  const contact = h("input", {type: "search", name: "contact", id: "filter-contact", placeholder: "+1555…",
                              value: query.contact || ""});
  return h("form", {class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = {status: status.value, from: from.value, to: to.value, contact: contact.value.trim()};
    const search = new URLSearchParams(Object.entries(next).filter(([, v]) => v)).toString();
    location.hash = `#/flows/${encodeURIComponent(sid)}/executions` + (search ? "?" + search : "");
  }},
  h("label", {}, "Status ", status), h("label", {}, "Created (UTC) from ", from), h("label", {}, "to ", to),
  h("label", {}, "Contact ", contact), h("button", {type: "submit"}, "Apply"),
  link(["flows", sid, "executions"], "Clear"));
}

function table(sid, executions) {
  return h("table", {class: "list", id: "executions"},
    h("thead", {}, h("tr", {}, ["Execution", "Status", "Contact", "Started", "Updated", "Revision"].map((t) => h("th", {}, t)))),
    h("tbody", {}, executions.map((e) => h("tr", {dataset: {sid: e.sid, status: e.status}},
      h("td", {class: "sid"}, link(["flows", sid, "executions", e.sid], e.sid)),
      h("td", {}, badge(e.status)),
      h("td", {}, e.contact_channel_address || ""),
      h("td", {}, when(e.date_created)),
      h("td", {}, when(e.date_updated)),
      h("td", {class: "num"}, String(e.flow_version))))));
}

async function byContact(sid, query) {
  const needle = query.contact.replace(/\s+/g, "").toLowerCase();
  let path = paths.executions(sid, {...apiFilters(query), PageSize: "1000", ...(query.token ? {PageToken: query.token} : {})});
  const found = [];
  let scanned = 0, pages = 0;
  while (path && pages < SCAN_PAGES && found.length < MAX_MATCHES) {
    const page = await get(path);
    pages += 1;
    scanned += page.executions.length;
    for (const e of page.executions) {
      if (String(e.contact_channel_address || "").replace(/\s+/g, "").toLowerCase().includes(needle)) found.push(e);
    }
    path = localPath(page.meta && page.meta.next_page_url);
  }
  return {executions: found.slice(0, MAX_MATCHES), scanned, next: path ? token(path) : null};
}

export async function executionsPage(ctx, sid, query) {
  const flow = await get(paths.flow(sid));
  ctx.crumbs([["Flows", ["flows"]], [flow.friendly_name || sid, ["flows", sid]], ["Executions"]]);
  ctx.title(`Executions · ${flow.friendly_name || sid}`);
  const body = h("div", {id: "executions-body"});
  ctx.show(h("div", {class: "page-head"}, h("h1", {}, "Executions"),
    h("div", {class: "facts"}, link(["flows", sid], flow.friendly_name || sid), h("span", {class: "sid"}, sid))),
  filterForm(sid, query), body);

  let shown = null;
  const keep = Object.fromEntries(Object.entries(query).filter(([k, v]) => v && k !== "token"));
  async function render() {
    if (query.contact) {
      const result = await byContact(sid, query);
      if (!ctx.alive()) return;
      mount(body, result.executions.length ? table(sid, result.executions) : h("p", {class: "empty"}, "No matching executions."),
        h("p", {class: "muted"}, `${result.executions.length} match(es) among ${result.scanned} execution(s) scanned.`),
        h("nav", {class: "pager"}, result.next ? link(["flows", sid, "executions"], "Scan older →", {...keep, token: result.next}) : null));
      return;
    }
    const page = await get(paths.executions(sid, {...apiFilters(query), PageSize: "50",
                                                  ...(query.token ? {PageToken: query.token} : {})}));
    if (!ctx.alive()) return;
    // redraw only when something changed, so a refresh does not drop the reader's text selection or focus
    const signature = JSON.stringify(page.executions.map((e) => [e.sid, e.status, e.date_updated]));
    if (signature === shown) return;
    shown = signature;
    const next = token(page.meta && page.meta.next_page_url);
    const previous = token(page.meta && page.meta.previous_page_url);
    mount(body, page.executions.length ? table(sid, page.executions) : h("p", {class: "empty"}, "No executions match."),
      h("nav", {class: "pager"},
        query.token && previous ? link(["flows", sid, "executions"], "← Newer", {...keep, token: previous}) : null,
        next ? link(["flows", sid, "executions"], "Older →", {...keep, token: next}) : null));
  }
  await render();
  if (!query.token && !query.contact) ctx.every(3000, render);
}
