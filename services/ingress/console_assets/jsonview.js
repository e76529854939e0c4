// A collapsible JSON viewer built from DOM nodes (<details> per object/array), so every key and value is
// text. Contexts can be large: objects open two levels deep, and long lists show their first items.

import {h} from "./dom.js";

const MAX_CHILDREN = 500;

function scalar(value) {
  if (value === null) return h("span", {class: "json-null"}, "null");
  const kind = typeof value;
  if (kind === "string") return h("span", {class: "json-string"}, JSON.stringify(value));
  if (kind === "number" || kind === "boolean") return h("span", {class: "json-" + kind}, String(value));
  return h("span", {class: "json-other"}, String(value));
}

const SMALL = 60;

/** How many scalars value holds, counting no further than limit + 1. */
function leaves(value, limit) {
  if (value === null || typeof value !== "object") return 1;
  let count = 0;
  for (const child of Object.values(value)) {
    count += leaves(child, limit - count);
    if (count > limit) break;
  }
  return count;
}

function keyLabel(key) {
  return key === null ? null : [h("span", {class: "json-key"}, String(key)), ": "];
}

function entry(key, value, depth, openDepth) {
  const container = value !== null && typeof value === "object";
  const items = container ? (Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value)) : [];
  if (!container || items.length === 0) {
    return h("div", {class: "json-row"}, keyLabel(key), container ? h("span", {class: "json-empty"},
      Array.isArray(value) ? "[]" : "{}") : scalar(value));
  }
  const summary = Array.isArray(value) ? `[${items.length} item${items.length === 1 ? "" : "s"}]`
    : `{${items.length} key${items.length === 1 ? "" : "s"}}`;
  const children = h("div", {class: "json-children"},
    items.slice(0, MAX_CHILDREN).map(([k, v]) => entry(k, v, depth + 1, openDepth)),
    items.length > MAX_CHILDREN ? h("div", {class: "json-more"}, `… ${items.length - MAX_CHILDREN} more`) : null);
  // a small subtree opens whole: a step's context is a few nested keys deep (widgets.NAME.inbound.Body)
  const open = depth < openDepth || leaves(value, SMALL) <= SMALL;
  return h("details", {class: "json-node", open},
    h("summary", {}, keyLabel(key), h("span", {class: "json-summary"}, summary)), children);
}

/** A viewer for value; "Raw" switches to the indented JSON text. */
export function jsonView(value, {openDepth = 2} = {}) {
  const tree = h("div", {class: "json-tree"}, entry(null, value, 0, openDepth));
  const raw = h("pre", {class: "json-raw", hidden: true}, JSON.stringify(value, null, 2));
  const toggle = h("button", {type: "button", class: "small", onclick: () => {
    raw.hidden = !raw.hidden;
    tree.hidden = !raw.hidden;
    toggle.textContent = raw.hidden ? "Raw JSON" : "Tree";
  }}, "Raw JSON");
  return h("div", {class: "json"}, h("div", {class: "json-tools"}, toggle), tree, raw);
}
