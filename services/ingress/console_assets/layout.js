// Where each widget of a flow goes on the canvas. Studio exports carry each widget's position in
// properties.offset and we keep those, so the graph looks like the Studio canvas its authors know; a flow
// without them gets a layered layout (trigger on top, transitions pointing down where they can). Either way a
// last pass moves boxes apart until none overlap, because hand-edited or generated offsets can collide.
// Pure functions of the definition and a text-measuring function: no DOM here.

export const BOX_W = 260;
export const HEAD_H = 52;      // name and type lines
export const PORT_H = 20;      // one transition "port" pill, labelled with its event
export const PORT_GAP = 4;
export const PAD = 8;
export const GAP = 24;         // the least space left between two boxes
const ROW_GAP = 90;            // between layers of the automatic layout: room for the edges to bend
const PORT_MIN_W = 36;

function finite(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** One box per state, sized for its name line and its transition pills (wrapped into rows of BOX_W). */
export function buildNodes(definition, measure) {
  const states = definition && Array.isArray(definition.states) ? definition.states : [];
  const nodes = [];
  for (const state of states) {
    if (!state || typeof state !== "object") continue;
    const props = state.properties && typeof state.properties === "object" ? state.properties : {};
    const offset = props.offset && finite(props.offset.x) && finite(props.offset.y) ? props.offset : null;
    const transitions = Array.isArray(state.transitions) ? state.transitions : [];
    const inner = BOX_W - 2 * PAD;
    const ports = [];
    let x = 0, row = 0;
    transitions.forEach((t, index) => {
      const label = t && t.event !== undefined && t.event !== null ? String(t.event) : "";
      const next = t && typeof t.next === "string" && t.next ? t.next : null;
      const conditions = t && Array.isArray(t.conditions) ? t.conditions : [];
      const hint = conditions.map((c) => (c && c.friendly_name !== undefined ? String(c.friendly_name) : "")).join("; ");
      const w = Math.min(inner, Math.max(PORT_MIN_W, Math.ceil(measure(label, "port")) + 16));
      if (x > 0 && x + w > inner) { x = 0; row += 1; }
      ports.push({index, label, next, hint, w, x: PAD + x, y: HEAD_H + row * (PORT_H + PORT_GAP)});
      x += w + PORT_GAP;
    });
    const rows = ports.length ? row + 1 : 0;
    nodes.push({
      name: String(state.name ?? ""), type: String(state.type ?? ""), offset, ports,
      x: 0, y: 0, w: BOX_W, h: HEAD_H + (rows ? rows * (PORT_H + PORT_GAP) - PORT_GAP + PAD : 0),
    });
  }
  return nodes;
}

function overlaps(a, b, gap) {
  return a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;
}

/** Move boxes right or down, top-left first, until no two are closer than `gap`. Terminates: a box that keeps
 *  colliding is finally put below every box placed before it. */
export function separate(nodes, gap = GAP) {
  const order = [...nodes].sort((a, b) => a.y - b.y || a.x - b.x);
  const done = [];
  for (const node of order) {
    for (let tries = 0; ; tries += 1) {
      const hit = done.find((other) => overlaps(other, node, gap));
      if (!hit) break;
      if (tries > 2 * done.length + 8) {
        node.y = Math.max(...done.map((other) => other.y + other.h)) + gap;
        break;
      }
      const right = hit.x + hit.w + gap - node.x;
      const down = hit.y + hit.h + gap - node.y;
      if (right <= down) node.x += right; else node.y += down;
    }
    done.push(node);
  }
}

/** Depth-first from the initial state (then from any state not reached): edges back to a state still on the
 *  stack close a loop and are left out of the layering. Returns forward successor lists and the visit order. */
function forwardEdges(nodes, byName, initial) {
  const succ = new Map(nodes.map((n) => [n, []]));
  const state = new Map();  // node -> 1 on stack, 2 done
  const order = [];
  const roots = [byName.get(initial), ...nodes].filter(Boolean);
  for (const root of roots) {
    if (state.has(root)) continue;
    const stack = [[root, 0]];
    state.set(root, 1);
    order.push(root);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i >= node.ports.length) { state.set(node, 2); stack.pop(); continue; }
      top[1] = i + 1;
      const target = node.ports[i].next ? byName.get(node.ports[i].next) : undefined;
      if (!target || target === node || state.get(target) === 1) continue;
      if (!succ.get(node).includes(target)) succ.get(node).push(target);
      if (!state.has(target)) { state.set(target, 1); order.push(target); stack.push([target, 0]); }
    }
  }
  return {succ, order};
}

/** Layers by longest path over the loop-free edges, ordered by barycentres, packed without overlap. */
export function layered(nodes, byName, initial) {
  const {succ, order} = forwardEdges(nodes, byName, initial);
  const pred = new Map(nodes.map((n) => [n, []]));
  for (const [from, targets] of succ) for (const to of targets) pred.get(to).push(from);
  const indegree = new Map(nodes.map((n) => [n, pred.get(n).length]));
  const layer = new Map(nodes.map((n) => [n, 0]));
  const queue = order.filter((n) => indegree.get(n) === 0);
  while (queue.length) {
    const node = queue.shift();
    for (const to of succ.get(node)) {
      layer.set(to, Math.max(layer.get(to), layer.get(node) + 1));
      indegree.set(to, indegree.get(to) - 1);
      if (indegree.get(to) === 0) queue.push(to);
    }
  }
  const rows = [];
  for (const node of order) {
    const r = layer.get(node);
    (rows[r] = rows[r] || []).push(node);
  }
  const layers = rows.filter(Boolean);
  const position = new Map();
  const index = () => layers.forEach((row) => row.forEach((n, i) => position.set(n, i - (row.length - 1) / 2)));
  index();
  for (let sweep = 0; sweep < 8; sweep += 1) {
    const down = sweep % 2 === 0;
    const sequence = down ? layers : [...layers].reverse();
    for (const row of sequence) {
      const key = new Map(row.map((n) => {
        const near = down ? pred.get(n) : succ.get(n);
        const mean = near.length ? near.reduce((sum, m) => sum + position.get(m), 0) / near.length : position.get(n);
        return [n, mean];
      }));
      row.sort((a, b) => key.get(a) - key.get(b));
      row.forEach((n, i) => position.set(n, i - (row.length - 1) / 2));
    }
  }
  // x: each box wants to sit under the mean of its predecessors; two passes keep the order and the spacing, and
  // their average keeps both (each pass spaces neighbours at least one step apart, so their mean does too)
  const step = BOX_W + GAP * 2;
  let top = 0;
  layers.forEach((row, r) => {
    const want = row.map((n, i) => {
      const near = pred.get(n).filter((m) => m.placed);
      return r > 0 && near.length ? near.reduce((sum, m) => sum + m.x, 0) / near.length : (i - (row.length - 1) / 2) * step;
    });
    const left = [], right = [];
    want.forEach((w, i) => { left[i] = i ? Math.max(w, left[i - 1] + step) : w; });
    for (let i = want.length - 1; i >= 0; i -= 1) right[i] = i < want.length - 1 ? Math.min(want[i], right[i + 1] - step) : want[i];
    row.forEach((n, i) => { n.x = Math.round((left[i] + right[i]) / 2); n.y = top; n.placed = true; });
    top += Math.max(...row.map((n) => n.h)) + ROW_GAP;
  });
  for (const n of nodes) delete n.placed;
}

export function bounds(nodes) {
  if (!nodes.length) return {x: 0, y: 0, w: BOX_W, h: HEAD_H};
  const x = Math.min(...nodes.map((n) => n.x)), y = Math.min(...nodes.map((n) => n.y));
  return {x, y, w: Math.max(...nodes.map((n) => n.x + n.w)) - x, h: Math.max(...nodes.map((n) => n.y + n.h)) - y};
}

/** The whole drawing: boxes with positions, edges between ports and boxes, where the positions came from. */
export function layout(definition, measure) {
  const nodes = buildNodes(definition, measure);
  const byName = new Map();
  for (const n of nodes) if (!byName.has(n.name)) byName.set(n.name, n);
  const withOffset = nodes.filter((n) => n.offset);
  let source;
  if (withOffset.length && withOffset.length * 2 >= nodes.length) {
    source = "offset";
    for (const n of withOffset) { n.x = n.offset.x; n.y = n.offset.y; }
    const box = bounds(withOffset);
    nodes.filter((n) => !n.offset).forEach((n, i) => { n.x = box.x + i * (BOX_W + GAP); n.y = box.y + box.h + ROW_GAP; });
  } else {
    source = "auto";
    layered(nodes, byName, definition && definition.initial_state);
  }
  separate(nodes);
  const edges = [];
  for (const from of nodes) {
    for (const port of from.ports) {
      const to = port.next ? byName.get(port.next) : undefined;
      if (to) edges.push({from, to, port, event: port.label});
    }
  }
  return {nodes, edges, byName, bounds: bounds(nodes), source};
}
