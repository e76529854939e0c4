// DOM helpers. Every piece of data reaches the page through text nodes or setAttribute, never through HTML
// parsing (innerHTML and friends), so a flow named "<script>" is shown as those eight characters.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("a", {href: "#/x", class: "link"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace all children of node. */
export function mount(node, ...children) {
  node.replaceChildren();
  return fill(node, {}, children);
}

/** A link inside the console; every path segment is URI-encoded, so a sid can never leave the hash. */
export function link(segments, text, query) {
  const path = "#/" + segments.map(encodeURIComponent).join("/");
  const search = query ? new URLSearchParams(query).toString() : "";
  return h("a", {href: search ? path + "?" + search : path}, text);
}

/** "2026-12-04T15:05:09Z" -> "2026-12-04 15:05:09 UTC"; anything else is shown as it came. */
export function when(iso) {
  if (typeof iso !== "string") return "";
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

export function badge(status) {
  return h("span", {class: ["badge", "badge-" + (status === "active" || status === "ended" || status === "published"
    || status === "draft" ? status : "other")]}, status);
}
