// One flow drawn as a graph: the latest revision, or ?revision=N.

import {get, paths} from "./api.js";
import {badge, h, link, when} from "./dom.js";
import {drawFlow} from "./graph.js";

/** The graph in a frame with its zoom buttons and a note on where the positions came from. */
export function graphPanel(flow) {
  const frame = h("div", {class: "graph-frame"});
  frame.append(flow.svg);
  const note = flow.drawing.source === "offset" ? "positions from the export's properties.offset"
    : "automatic layout (the definition has no positions)";
  return h("section", {class: "graph-panel"},
    h("div", {class: "graph-tools"},
      h("button", {type: "button", class: "small", onclick: () => flow.fit()}, "Fit"),
      h("button", {type: "button", class: "small", onclick: () => flow.zoom(0.7)}, "+"),
      h("button", {type: "button", class: "small", onclick: () => flow.zoom(1 / 0.7)}, "−"),
      h("span", {class: "muted"}, `${flow.drawing.nodes.length} widgets · ${note} · drag to pan, wheel to zoom`)),
    frame);
}

/** A picker of the flow's revisions (the newest 100); choosing one draws it. */
function revisionPicker(sid, revisions, shown) {
  const select = h("select", {id: "revision", onchange: () => {
    location.hash = `#/flows/${encodeURIComponent(sid)}?revision=${encodeURIComponent(select.value)}`;
  }}, revisions.map((r) => h("option", {value: String(r.revision), selected: r.revision === shown.revision},
    `revision ${r.revision} · ${r.status}` + (r.commit_message ? ` · ${r.commit_message}` : ""))));
  return h("label", {class: "muted"}, "Showing ", select);
}

export async function flowPage(ctx, sid, query) {
  const [flow, list] = await Promise.all([get(paths.flow(sid)), get(paths.revisions(sid))]);
  const shown = query.revision ? await get(paths.revision(sid, query.revision)) : flow;
  ctx.crumbs([["Flows", ["flows"]], [flow.friendly_name || sid]]);
  ctx.title(flow.friendly_name || sid);
  const graph = drawFlow(shown.definition || {});
  ctx.show(
    h("div", {class: "page-head"},
      h("h1", {}, flow.friendly_name || sid),
      h("div", {class: "facts"},
        badge(shown.status), revisionPicker(sid, list.revisions || [], shown),
        h("span", {class: "sid"}, sid), h("span", {}, "updated " + when(flow.date_updated)),
        shown.valid === false ? h("span", {class: "warn"}, "invalid definition") : null),
      h("div", {class: "actions"}, link(["flows", sid, "executions"], "Executions →"))),
    graphPanel(graph));
  graph.focus();
}
