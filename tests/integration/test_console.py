"""The web console end to end: headless Chromium (Debian's) against a real cluster.

A person signs in, opens a flow, an execution runs and waits for an SMS reply while the console shows it live,
the reply comes (signed, from the Twilio simulator) and the page, without a reload, shows the path taken and a
step's context. Large flows (the biggest real export, and 127 widgets built from real exports) are drawn
without two widgets overlapping. A screenshot of each page is written to ``tests/.artifacts/console/``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devtools.simulator import Simulator
from tests.browser import BrowserPage, browser_page, require_chromium
from tests.conftest import require_conformance
from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import definition, phone, split, w

pytestmark = pytest.mark.integration

CHANNEL = "+15559990000"
BIGGEST_EXPORT = "19-sheikplastk-firstPrototype2.json"  # 55 widgets, the largest in conformance/flows


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()  # before the cluster starts: no browser, nothing to do


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> AsyncIterator[Simulator]:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


def at(state: dict[str, Any], x: int, y: int) -> dict[str, Any]:
    state["properties"]["offset"] = {"x": x, "y": y}
    return state


def order_flow(lookup_url: str) -> dict[str, Any]:
    """A small pizza-order flow laid out as on a Studio canvas: look the caller up, ask by SMS, branch on the answer."""
    flow = definition(
        "lookup",
        at(w("lookup", "make-http-request", {"success": "tier", "failed": "sorry"}, method="GET", url=lookup_url,
             content_type="application/json"), 0, 200),
        at(split("tier", "{{widgets.lookup.parsed.tier}}", [("equal_to", "gold", "ask")], "regular"), 0, 420),
        at(w("ask", "send-and-wait-for-reply", {"incomingMessage": "size", "timeout": "late", "deliveryFailure": None},
             body="Hi {{widgets.lookup.parsed.name}}! Small or large?", timeout="3600",
             **{"from": "{{flow.channel.address}}"}), 260, 640),
        at(w("regular", "send-message", {"sent": None, "failed": None}, body="Thanks for calling."), -300, 640),
        at(w("sorry", "send-message", {"sent": None, "failed": None}, body="We could not find you."), 400, 420),
        at(split("size", "{{widgets.ask.inbound.Body}}", [("contains", "large", "large_order")], "small_order"), 260, 880),
        at(w("late", "send-message", {"sent": None, "failed": None}, body="Too late."), 640, 880),
        at(w("large_order", "set-variables", {"next": "confirm"}, variables=[{"key": "size", "value": "large"}]), 60, 1100),
        at(w("small_order", "set-variables", {"next": "confirm"}, variables=[{"key": "size", "value": "small"}]), 400, 1100),
        at(w("confirm", "send-message", {"sent": None, "failed": None},
             body="One {{flow.variables.size}} pizza coming up."), 220, 1320),
    )
    flow["states"][0]["properties"]["offset"] = {"x": 0, "y": 0}
    return flow


async def sign_in(browser: BrowserPage, base: str, settings: Any) -> None:
    page = browser.page
    await page.goto(base + "/console/")
    await page.fill("#login-user", settings.account_sid)
    await page.fill("#login-password", settings.auth_token)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#flows")


async def classes(browser: BrowserPage, selector: str) -> set[str]:
    return set((await browser.page.get_attribute(selector, "class") or "").split())


async def taken_edges(browser: BrowserPage) -> set[tuple[str, str, str]]:
    found = await browser.page.eval_on_selector_all(
        "path.edge.taken", "els => els.map(e => [e.dataset.from, e.dataset.event, e.dataset.to])")
    return {tuple(edge) for edge in found}


async def test_a_person_follows_an_execution_live_from_the_flows_list_to_a_steps_context(
        api: Any, settings: Any, messages_api: MessagesApi, sim: Simulator,
        http_server: Callable[[web.Application], Any]) -> None:
    async def customer(request: web.Request) -> web.Response:
        return web.json_response({"tier": "gold", "name": "Ann"})

    service = web.Application()
    service.router.add_get("/customer", customer)
    lookup_url = await http_server(service) + "/customer"
    flow_sid = await api.create_flow(order_flow(lookup_url), name="Pizza order (console test)")
    contact = phone()

    async with browser_page(height=1300) as browser:  # tall enough for the whole flow at a readable scale
        page = browser.page
        await sign_in(browser, api.base, settings)
        row = page.locator(f"#flows tr[data-sid='{flow_sid}']")
        assert await row.locator("td.flow-name").text_content() == "Pizza order (console test)"
        await browser.screenshot("1-flows")

        await row.locator("td.flow-name a").click()
        await page.wait_for_selector("svg.graph g.node")
        assert await page.get_attribute("svg.graph", "data-layout") == "offset"
        assert await page.locator("svg.graph g.node").count() == 11
        edges = await page.eval_on_selector_all("path.edge", "els => els.map(e => [e.dataset.from, e.dataset.event, e.dataset.to])")
        assert ["ask", "incomingMessage", "size"] in edges and ["tier", "noMatch", "regular"] in edges
        labels = await page.locator("g.node[data-name='ask'] g.port text").all_text_contents()
        assert labels == ["incomingMessage", "timeout", "deliveryFailure"]
        await browser.screenshot("2-flow")

        created = await api.start(flow_sid, to=contact, from_=CHANNEL)
        await messages_api.wait_for(contact)  # the question went out: the execution waits in "ask"

        await page.click("text=Executions →")
        active = page.locator(f"#executions tr[data-sid='{created['sid']}']")
        assert await active.get_attribute("data-status") == "active"
        assert await active.locator("td").nth(2).text_content() == contact
        second = await api.start(flow_sid, to=phone(), from_=CHANNEL)  # appears without a reload (the list polls)
        await page.wait_for_selector(f"#executions tr[data-sid='{second['sid']}']", timeout=10_000)
        await browser.screenshot("3-executions")
        await page.fill("#filter-contact", contact[-7:])
        await page.click("form.filters button[type=submit]")
        await page.wait_for_selector("text=1 match(es)")
        assert await page.locator("#executions tbody tr").count() == 1
        await page.select_option("#filter-status", "ended")
        await page.click("form.filters button[type=submit]")
        await page.wait_for_selector("text=0 match(es)")
        today = created["date_created"][:10]  # the date filter is by UTC day, sent to the API
        await page.goto(f"{api.base}/console/#/flows/{flow_sid}/executions?from={today}&to={today}")
        await page.wait_for_selector(f"#executions tr[data-sid='{created['sid']}']")
        await page.goto(f"{api.base}/console/#/flows/{flow_sid}/executions?to=2000-01-01")
        await page.wait_for_selector("text=No executions match.")

        await page.goto(f"{api.base}/console/#/flows/{flow_sid}/executions?status=active")
        await page.click(f"#executions a:text('{created['sid']}')")
        await page.wait_for_selector("#live:has-text('waiting in ask')")
        assert await classes(browser, "g.node[data-name='ask']") >= {"visited", "current"}
        assert await taken_edges(browser) == {("Trigger", "incomingRequest", "lookup"), ("lookup", "success", "tier"),
                                              ("tier", "match", "ask")}
        await browser.screenshot("4-execution-waiting")

        transcript = await sim.message(flow_sid, "A large one, please", from_=contact, to=CHANNEL)
        assert "error" not in [t.kind for t in transcript.turns]
        # no reload: the page polls while the execution is active and redraws when it ends
        await page.wait_for_selector(".page-head .badge-ended", timeout=20_000)
        assert await page.locator("#live").count() == 0
        assert await taken_edges(browser) == {
            ("Trigger", "incomingRequest", "lookup"), ("lookup", "success", "tier"), ("tier", "match", "ask"),
            ("ask", "incomingMessage", "size"), ("size", "match", "large_order"), ("large_order", "next", "confirm")}
        assert await page.locator("g.node.visited").count() == 7
        assert await page.locator("g.node[data-name='regular'].visited").count() == 0
        steps = await page.eval_on_selector_all("#steps tr.step", "rows => rows.map(r => [...r.cells].slice(1, 4).map(c => c.textContent))")
        assert steps[-2:] == [["large_order", "next", "confirm"], ["confirm", "sent", "Ended"]]

        await page.click("#steps tr.step[data-from='ask']")
        inbound = page.locator("#context details:has(> summary > .json-key:text-is('inbound'))")
        body = inbound.locator(".json-row:has(> .json-key:text-is('Body')) .json-string")
        assert await body.text_content() == json.dumps("A large one, please")
        assert await body.is_visible()  # opened, not only in the DOM
        assert "ask" in (await page.locator(".context h2").text_content() or "")
        assert await classes(browser, "g.node[data-name='ask']") == {"node", "visited", "selected"}
        await page.click(".graph-tools button:text('Fit')")  # the view opened on the path so far; now all of it
        await browser.screenshot("5-execution")


def _states(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    flow = json.loads((require_conformance() / name).read_text())
    return flow, flow["states"]


def generated_127() -> dict[str, Any]:
    """127 widgets on a Studio-like grid (every seventh dropped on its neighbour's spot, as careless hands do),
    each a split with three or four transitions to widgets further on, back up the flow, or nowhere."""
    states = [w("Trigger", "trigger", {"incomingRequest": "w0", "incomingMessage": "w1", "incomingCall": None})]
    for i in range(126):
        matches = [("equal_to", str(k), f"w{(i * 7 + k * 13) % 126}") for k in range(1 + i % 3)]
        states.append(split(f"w{i}", "{{flow.data.choice}}", matches, f"w{(i + 1) % 126}" if i < 125 else None))
    for i, state in enumerate(states):
        spot = i - 1 if i % 7 == 6 else i
        state["properties"]["offset"] = {"x": (spot % 12) * 300 - 1500, "y": (spot // 12) * 260}
    return {"initial_state": "Trigger", "description": "generated", "flags": {"allow_concurrent_calls": True},
            "states": states}


def real_127() -> dict[str, Any]:
    """127 widgets from real exports on one canvas: the biggest export, plus the widgets (not the triggers) of five
    more, renamed apart and moved to the right of each other as a Studio user would have placed them."""
    flow, states = _states(BIGGEST_EXPORT)
    flow = copy.deepcopy(flow)
    right = max(s["properties"]["offset"]["x"] for s in flow["states"]) + 400
    for n, name in enumerate(["25-twilio-labs-patient-appointment-management.json", "26-twilio-labs-vaccine-standby.json",
                              "10-Eclairemoy-pride-astrology.json", "09-dsmwong-what3words.json",
                              "08-datakabeta-eppo-sms-reminders.json"]):
        _, more = _states(name)
        more = [copy.deepcopy(s) for s in more if s["type"] != "trigger"]
        left = min(s["properties"]["offset"]["x"] for s in more)
        for s in more:
            s["name"] = f"f{n}_{s['name']}"
            s["properties"]["offset"]["x"] += right - left
            for t in s["transitions"]:
                if t.get("next"):
                    t["next"] = f"f{n}_{t['next']}"
        right = max(s["properties"]["offset"]["x"] for s in more) + 400
        flow["states"].extend(more)
    assert len(flow["states"]) == 127
    return flow


def piled_up(flow: dict[str, Any]) -> dict[str, Any]:
    """The same widgets with every export's offsets left where they were: five canvases on top of each other."""
    out = copy.deepcopy(flow)
    for s in out["states"]:
        s["properties"]["offset"]["x"] %= 1600
    return out


def without_offsets(flow: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(flow)
    for s in out["states"]:
        s["properties"].pop("offset", None)
    return out


LARGE: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "generated-127": (generated_127, "offset"),
    "generated-127-no-offsets": (lambda: without_offsets(generated_127()), "auto"),
    "export-55": (lambda: _states(BIGGEST_EXPORT)[0], "offset"),
    "real-127": (real_127, "offset"),
    "real-127-piled-up": (lambda: piled_up(real_127()), "offset"),
    "real-127-no-offsets": (lambda: without_offsets(real_127()), "auto"),
}


@pytest.mark.parametrize("case", list(LARGE))
async def test_large_flows_are_drawn_without_overlap_with_every_transition_labelled(
        api: Any, settings: Any, case: str) -> None:
    build, layout = LARGE[case]
    flow = build()  # the real-export cases skip here without the corpus
    flow_sid = await api.create_flow(flow, name=f"console {case}")
    async with browser_page() as browser:
        page = browser.page
        await sign_in(browser, api.base, settings)
        await page.goto(f"{api.base}/console/#/flows/{flow_sid}")
        await page.wait_for_selector("svg.graph g.node")
        assert await page.get_attribute("svg.graph", "data-layout") == layout
        drawn = await page.eval_on_selector_all("svg.graph g.node", """nodes => nodes.map(g => {
            const box = g.querySelector('rect.box').getBBox();
            const within = (b, vertical) => b.x >= box.x && b.x + b.width <= box.x + box.width
                && (!vertical || (b.y >= box.y && b.y + b.height <= box.y + box.height));
            // a text's box height is its font's line metrics, not its ink: only its width is checked
            const inside = [...g.querySelectorAll('g.port rect')].every(el => within(el.getBBox(), true))
                && [...g.querySelectorAll('text')].filter(el => el.textContent).every(el => within(el.getBBox(), false));
            return {name: g.dataset.name, x: box.x, y: box.y, w: box.width, h: box.height, inside,
                    ports: [...g.querySelectorAll('g.port')].map(p => p.dataset.event)};
        })""")
        assert len(drawn) == len(flow["states"])
        overlapping = [(a["name"], b["name"]) for i, a in enumerate(drawn) for b in drawn[i + 1:]
                       if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]]
        assert overlapping == []
        assert [d["name"] for d in drawn if not d["inside"]] == []  # names and pills stay inside their box
        by_name = {d["name"]: d for d in drawn}
        for state in flow["states"]:
            assert by_name[state["name"]]["ports"] == [t["event"] for t in state["transitions"]]
        expected_edges = sum(1 for s in flow["states"] for t in s["transitions"] if t.get("next"))
        assert await page.locator("path.edge").count() == expected_edges
        await browser.screenshot(f"flow-{case}")
