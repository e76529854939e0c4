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

export async function flowPage(ctx, sid, query) {
  const flow = await get(paths.flow(sid));
  const shown = query.revision ? await get(paths.revision(sid, query.revision)) : flow;
  ctx.crumbs([["Flows", ["flows"]], [flow.friendly_name || sid]]);
  ctx.title(flow.friendly_name || sid);
  const graph = drawFlow(shown.definition || {});
  ctx.show(
    h("div", {class: "page-head"},
      h("h1", {}, flow.friendly_name || sid),
      h("div", {class: "facts"},
        badge(shown.status), h("span", {}, `revision ${shown.revision}`),
        h("span", {class: "sid"}, sid), h("span", {}, "updated " + when(flow.date_updated)),
        shown.valid === false ? h("span", {class: "warn"}, "invalid definition") : null),
      h("div", {class: "actions"}, link(["flows", sid, "executions"], "Executions →"))),
    graphPanel(graph));
  graph.focus();
}
