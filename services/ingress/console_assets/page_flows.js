// Flows list: name, status, latest revision, last change; newest first, 50 a page.

import {get, localPath, paths} from "./api.js";
import {badge, h, link, when} from "./dom.js";

function token(url) {
  const path = localPath(url);
  return path ? new URLSearchParams(path.split("?")[1] || "").get("PageToken") : null;
}

export async function flowsPage(ctx, query) {
  const page = await get(paths.flows({PageSize: "50", ...(query.token ? {PageToken: query.token} : {})}));
  ctx.crumbs([["Flows"]]);
  const rows = page.flows.map((flow) => h("tr", {dataset: {sid: flow.sid}},
    h("td", {class: "flow-name"}, link(["flows", flow.sid], flow.friendly_name || flow.sid)),
    h("td", {}, badge(flow.status)),
    h("td", {class: "num"}, String(flow.revision)),
    h("td", {}, when(flow.date_updated)),
    h("td", {class: "sid"}, flow.sid),
    h("td", {}, link(["flows", flow.sid, "executions"], "Executions"))));
  const next = token(page.meta && page.meta.next_page_url);
  const previous = token(page.meta && page.meta.previous_page_url);
  ctx.show(
    h("h1", {}, "Flows"),
    rows.length ? h("table", {class: "list", id: "flows"},
      h("thead", {}, h("tr", {}, ["Name", "Status", "Revision", "Updated", "SID", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))
      : h("p", {class: "empty"}, "No flows yet: import one with `switchboard flows import flow.json` or POST /v2/Flows."),
    h("nav", {class: "pager"},
      previous && query.token ? link(["flows"], "← Newer", {token: previous}) : null,
      next ? link(["flows"], "Older →", {token: next}) : null));
}
