// The flow drawn as SVG: a box per widget with its transitions as labelled pills along the bottom (as on
// Studio's canvas), an arrow from each pill to the widget it leads to; pan by dragging, zoom with the wheel.
// highlight() marks an execution's path: the widgets it visited (with their step numbers), the transitions it
// took, and the widget it is waiting in.

import {s} from "./dom.js";
import {PORT_H, bounds, layout} from "./layout.js";

const READABLE = 0.6;  // the least scale a page opens at: names are still legible

let canvas = null;

/** Text width in px for the fonts the stylesheet gives names, types and pills. */
export function measure(text, kind) {
  canvas = canvas || document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  ctx.font = kind === "name" ? "600 15px sans-serif" : "12px sans-serif";
  return ctx.measureText(text).width;
}

/** The longest prefix of text (with "…") that fits in width px. */
function fit(text, width, kind) {
  if (measure(text, kind) <= width) return text;
  let lo = 0, hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(text.slice(0, mid) + "…", kind) <= width) lo = mid; else hi = mid - 1;
  }
  return text.slice(0, lo) + "…";
}

function edgePath(edge) {
  const {from, to, port} = edge;
  const sx = from.x + port.x + port.w / 2, sy = from.y + from.h;
  const tx = to.x + to.w / 2, ty = to.y;
  if (to === from) {
    const rx = from.x + from.w + 40;
    return `M${sx},${sy} C${sx},${sy + 40} ${rx},${sy + 30} ${rx},${from.y + from.h / 2} S${tx},${ty - 40} ${tx},${ty}`;
  }
  const bend = ty > sy ? Math.max(30, (ty - sy) / 2) : 60 + Math.min(240, (sy - ty) / 4);
  return `M${sx},${sy} C${sx},${sy + bend} ${tx},${ty - bend} ${tx},${ty}`;
}

function drawNode(node) {
  const g = s("g", {class: "node", dataset: {name: node.name}});
  g.append(
    s("title", {}, `${node.name} (${node.type})`),
    s("rect", {class: "box", x: node.x, y: node.y, width: node.w, height: node.h, rx: 6}),
    s("text", {class: "name", x: node.x + 10, y: node.y + 22}, fit(node.name, node.w - 60, "name")),
    s("text", {class: "type", x: node.x + 10, y: node.y + 40}, fit(node.type, node.w - 20, "type")),
  );
  node.badge = s("text", {class: "steps-badge", x: node.x + node.w - 8, y: node.y + 20, "text-anchor": "end"});
  g.append(node.badge);
  node.portEls = node.ports.map((port) => {
    const pg = s("g", {class: ["port", port.next ? "" : "port-end"], dataset: {event: port.label}},
      s("title", {}, port.label + (port.hint ? ` (${port.hint})` : "") + (port.next ? ` → ${port.next}` : " → end")),
      s("rect", {x: node.x + port.x, y: node.y + port.y, width: port.w, height: PORT_H, rx: 9}),
      s("text", {x: node.x + port.x + port.w / 2, y: node.y + port.y + 14, "text-anchor": "middle"},
        fit(port.label, port.w - 10, "port")));
    g.append(pg);
    return pg;
  });
  node.el = g;
  return g;
}

/** Draw a definition into a new <svg>; returns the element and the controls the pages use. */
export function drawFlow(definition, {onSelect} = {}) {
  const drawing = layout(definition, measure);
  const id = "m" + Math.random().toString(36).slice(2, 8);
  const svg = s("svg", {class: "graph", role: "img", "aria-label": "flow graph", dataset: {layout: drawing.source}},
    s("defs", {},
      s("marker", {id: id + "-a", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
        orient: "auto-start-reverse"}, s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrow"})),
      s("marker", {id: id + "-t", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6,
        orient: "auto-start-reverse"}, s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrow-taken"}))));
  const edgeLayer = s("g", {class: "edges"});
  for (const edge of drawing.edges) {
    edge.el = s("path", {class: "edge", d: edgePath(edge), "marker-end": `url(#${id}-a)`,
      dataset: {from: edge.from.name, event: edge.event, to: edge.to.name}},
      s("title", {}, `${edge.from.name} —${edge.event}→ ${edge.to.name}`));
    edgeLayer.append(edge.el);
  }
  const nodeLayer = s("g", {class: "nodes"});
  for (const node of drawing.nodes) nodeLayer.append(drawNode(node));
  svg.append(edgeLayer, nodeLayer);

  const pad = 40, b = drawing.bounds;
  let view = {x: b.x - pad, y: b.y - pad, w: b.w + 2 * pad, h: b.h + 2 * pad};
  const apply = () => svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  apply();
  const scale = () => Math.max(view.w / (svg.clientWidth || 1), view.h / (svg.clientHeight || 1));

  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const ctm = svg.getScreenCTM();
    if (!ctm) return;
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(ctm.inverse());
    const factor = Math.min(4, Math.max(0.25, Math.exp(event.deltaY * 0.0015)));
    view = {x: p.x - (p.x - view.x) * factor, y: p.y - (p.y - view.y) * factor, w: view.w * factor, h: view.h * factor};
    apply();
  }, {passive: false});
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    drag = {x: event.clientX, y: event.clientY, view: {...view}, moved: false, target: event.target};
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    if (!drag.moved) svg.setPointerCapture(event.pointerId);
    drag.moved = true;
    const k = scale();
    view = {...drag.view, x: drag.view.x - dx * k, y: drag.view.y - dy * k};
    apply();
  });
  svg.addEventListener("pointerup", () => {
    const clicked = drag && !drag.moved && drag.target instanceof Element ? drag.target.closest("g.node") : null;
    drag = null;
    if (clicked && onSelect) onSelect(clicked.dataset.name);
  });

  function frame(nodes, floor, anchor) {
    const box = bounds(nodes), cw = svg.clientWidth || 800, ch = svg.clientHeight || 600;
    const fits = Math.min(cw / (box.w + 2 * pad), ch / (box.h + 2 * pad), 1);
    const k = Math.max(fits, floor);
    const w = cw / k, h = ch / k;
    if (k === fits || !anchor) view = {x: box.x + box.w / 2 - w / 2, y: box.y + box.h / 2 - h / 2, w, h};
    else {
      // centred on the anchor, but not past the drawing's left or right edge (no half-empty first view)
      const lo = box.x - pad, hi = box.x + box.w + pad - w;
      const x = hi < lo ? box.x + box.w / 2 - w / 2 : Math.min(Math.max(anchor.x + anchor.w / 2 - w / 2, lo), hi);
      view = {x, y: box.y - pad, w, h};
    }
    apply();
  }

  function portOf(node, event, next) {
    const exact = node.ports.findIndex((p) => p.label === event && p.next === next);
    return exact >= 0 ? exact : node.ports.findIndex((p) => p.label === event && !p.next);
  }

  return {
    svg,
    drawing,
    /** The whole flow in view (never magnified past 1:1). */
    fit() { frame(drawing.nodes, 0, null); },
    /** The first view of a page: the named widgets (all by default) if they fit at a readable scale, else that
     *  scale from the top of them, centred on the first one (the trigger, or where a path starts). */
    focus(names) {
      const nodes = (names || []).map((n) => drawing.byName.get(n)).filter(Boolean);
      const anchor = nodes[0] || drawing.byName.get(definition && definition.initial_state) || null;
      frame(nodes.length ? nodes : drawing.nodes, READABLE, anchor);
    },
    zoom(factor) {
      const cx = view.x + view.w / 2, cy = view.y + view.h / 2;
      view = {x: cx - (view.w * factor) / 2, y: cy - (view.h * factor) / 2, w: view.w * factor, h: view.h * factor};
      apply();
    },
    /** Centre the view on a widget, without changing the zoom, unless it is in view already. */
    reveal(name) {
      const node = drawing.byName.get(name);
      if (!node || drag) return;  // never pull the drawing from under the user's pointer
      const inside = node.x >= view.x && node.y >= view.y && node.x + node.w <= view.x + view.w
        && node.y + node.h <= view.y + view.h;
      if (inside) return;
      view = {...view, x: node.x + node.w / 2 - view.w / 2, y: node.y + node.h / 2 - view.h / 2};
      apply();
    },
    /** Mark a path: steps [{from, event, to}] in order (top-level steps only), the widget waiting now, the
     *  selected widget. Everything not named is unmarked, so calling it again after a poll is enough. */
    highlight({steps = [], current = null, selected = null} = {}) {
      const numbers = new Map();
      const takenEdges = new Set(), takenPorts = new Set();
      steps.forEach((step, i) => {
        const node = drawing.byName.get(step.from);
        if (!node) return;
        (numbers.get(node) || numbers.set(node, []).get(node)).push(i + 1);
        const target = drawing.byName.has(step.to) ? step.to : null;
        const p = portOf(node, step.event, target);
        if (p < 0) return;
        takenPorts.add(node.portEls[p]);
        const edge = drawing.edges.find((e) => e.from === node && e.port === node.ports[p]);
        if (edge) takenEdges.add(edge);
      });
      const lastTo = steps.length ? drawing.byName.get(steps[steps.length - 1].to) : null;
      for (const node of drawing.nodes) {
        const list = numbers.get(node) || [];
        const visited = list.length > 0 || node === lastTo || node.name === current;
        node.el.classList.toggle("visited", visited);
        node.el.classList.toggle("current", node.name === current);
        node.el.classList.toggle("selected", node.name === selected);
        node.badge.textContent = list.length > 4 ? `${list.slice(0, 3).join(" · ")} … ${list[list.length - 1]}`
          : list.join(" · ");
        node.portEls.forEach((el) => el.classList.toggle("taken", takenPorts.has(el)));
      }
      for (const edge of drawing.edges) {
        const taken = takenEdges.has(edge);
        edge.el.classList.toggle("taken", taken);
        edge.el.setAttribute("marker-end", `url(#${id}-${taken ? "t" : "a"})`);
        // taken edges drawn last, so the path is never hidden under other arrows
        if (taken) edgeLayer.append(edge.el);
      }
    },
  };
}
