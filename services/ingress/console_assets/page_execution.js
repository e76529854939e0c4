// One execution: the flow revision it ran, drawn with the path it took; its steps in order with timing; the
// context of the selected step (or of the execution) in a JSON viewer. While the execution is active the page
// polls every second and redraws the path, so a waiting widget and each new step show up as they happen.

import {ApiError, get, paths} from "./api.js";
import {badge, h, link, mount, when} from "./dom.js";
import {drawFlow} from "./graph.js";
import {jsonView} from "./jsonview.js";
import {graphPanel} from "./page_flow.js";

const POLL_MS = 1000;

function seconds(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t / 1000 : null;
}

/** "2026-12-04T10:00:05Z" -> "10:00:05" (the full date is in the cell's tooltip). */
function clock(iso) {
  const m = /T(\d{2}:\d{2}:\d{2})/.exec(String(iso));
  return m ? m[1] : String(iso ?? "");
}

function span(a, b) {
  const x = seconds(a), y = seconds(b);
  return x === null || y === null ? "" : `${Math.max(0, y - x)} s`;
}

async function definitionOf(execution) {
  try {
    return (await get(paths.revision(execution.flow_sid, execution.flow_version))).definition || {};
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return (await get(paths.flow(execution.flow_sid))).definition || {};
    throw error;
  }
}

export async function executionPage(ctx, flowSid, sid, query) {
  const [flow, first] = await Promise.all([get(paths.flow(flowSid)), get(paths.execution(flowSid, sid))]);
  const definition = await definitionOf(first);
  ctx.crumbs([["Flows", ["flows"]], [flow.friendly_name || flowSid, ["flows", flowSid]],
              ["Executions", ["flows", flowSid, "executions"]], [sid]]);
  ctx.title(`${sid} · ${flow.friendly_name || flowSid}`);

  let execution = first, steps = [], selected = query.step || null;
  const head = h("div", {class: "page-head"});
  const stepsBody = h("tbody", {});
  const contextTitle = h("h2", {}, "Context");
  const contextBody = h("div", {id: "context"});
  const graph = drawFlow(definition, {onSelect: (name) => {
    const last = [...steps].reverse().find((step) => !step.parent_step_sid && step.transitioned_from === name);
    if (last) select(last.sid);
  }});

  function topLevel() {
    return steps.filter((step) => !step.parent_step_sid)
      .map((step) => ({from: step.transitioned_from, event: step.name, to: step.transitioned_to}));
  }

  function current() {
    if (execution.status !== "active") return null;
    const path = topLevel();
    return path.length ? path[path.length - 1].to : definition.initial_state || null;
  }

  function renderHead() {
    mount(head, h("h1", {}, "Execution"),
      h("div", {class: "facts"}, badge(execution.status), h("span", {class: "sid", id: "execution-sid"}, sid),
        h("span", {}, "contact " + (execution.contact_channel_address || "–")),
        h("span", {}, "started " + when(execution.date_created)),
        h("span", {}, "updated " + when(execution.date_updated)),
        h("span", {}, `revision ${execution.flow_version}`),
        execution.status === "active" ? h("span", {class: "live", id: "live"}, `waiting in ${current() || "?"} · live`) : null),
      h("div", {class: "actions"},
        h("button", {type: "button", class: "small", id: "show-execution-context", onclick: () => select(null)},
          "Execution context")));
  }

  function renderSteps() {
    const start = execution.date_created;
    let n = 0;
    mount(stepsBody, steps.map((step) => {
      const nested = Boolean(step.parent_step_sid);
      if (!nested) n += 1;
      return h("tr", {class: ["step", nested ? "nested" : "", step.sid === selected ? "selected" : ""],
                      dataset: {sid: step.sid, from: step.transitioned_from}, tabindex: 0,
                      onclick: () => select(step.sid), onkeydown: (e) => { if (e.key === "Enter") select(step.sid); }},
        h("td", {class: "num"}, nested ? "↳" : String(n)),
        h("td", {class: "widget"}, step.transitioned_from),
        h("td", {class: "event"}, step.name),
        h("td", {}, step.transitioned_to),
        h("td", {title: when(step.date_created)}, clock(step.date_created)),
        h("td", {class: "num"}, "+" + span(start, step.date_created)),
        h("td", {class: "num"}, span(step.date_created, step.date_updated)));
    }));
  }

  function renderGraph() {
    const step = steps.find((x) => x.sid === selected);
    graph.highlight({steps: topLevel(), current: current(), selected: step ? step.transitioned_from : null});
  }

  async function showContext() {
    const want = selected;
    const step = steps.find((x) => x.sid === want);
    const body = want && step ? await get(paths.stepContext(flowSid, sid, want)) : await get(paths.context(flowSid, sid));
    if (!ctx.alive() || selected !== want) return;
    contextTitle.textContent = step ? `Step ${step.transitioned_from} → ${step.name}: context` : "Execution context";
    mount(contextBody, jsonView(body.context === undefined ? null : body.context));
  }

  async function select(stepSid) {
    selected = stepSid;
    const hash = `#/flows/${encodeURIComponent(flowSid)}/executions/${encodeURIComponent(sid)}`
      + (stepSid ? "?step=" + encodeURIComponent(stepSid) : "");
    history.replaceState(null, "", hash);  // keeps the selection on reload without re-rendering the page
    renderSteps();
    renderGraph();
    await showContext();
  }

  async function refresh() {
    const [latest, list] = await Promise.all([get(paths.execution(flowSid, sid)), get(paths.steps(flowSid, sid))]);
    if (!ctx.alive()) return false;
    const changed = latest.status !== execution.status || latest.date_updated !== execution.date_updated
      || list.steps.length !== steps.length;
    execution = latest;
    steps = [...list.steps].reverse();  // the API lists newest first
    const initial = !head.firstChild;
    if (changed || initial) {
      renderHead();
      renderSteps();
      renderGraph();
      if (!initial && current()) graph.reveal(current());  // follow a live execution across a big flow
    }
    // a step's context never changes once recorded; the execution's does while it runs
    if (initial || (changed && selected === null)) await showContext();
    return execution.status === "active";
  }

  ctx.show(head, graphPanel(graph),
    h("div", {class: "columns"},
      h("section", {class: "steps"}, h("h2", {}, "Steps"),
        h("table", {class: "list", id: "steps"},
          h("thead", {}, h("tr", {}, ["#", "Widget", "Event", "Next", "At", "Since start", "Took"].map((t) => h("th", {}, t)))),
          stepsBody)),
      h("section", {class: "context"}, contextTitle, contextBody)));
  const active = await refresh();
  const path = topLevel();
  graph.focus(path.length ? [path[0].from, ...path.map((step) => step.to)] : null);
  if (active) {
    const stop = ctx.every(POLL_MS, async () => { if (!(await refresh())) stop(); });
  }
}
