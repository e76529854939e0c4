"""The console's server side, and that everything it shows is text: a hostile flow rendered in headless Chromium.

The browser part runs the console against a small stand-in for the REST API (in-process aiohttp, no Kafka);
the end-to-end test against a real cluster is tests/integration/test_console.py.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.ingress.console import ASSETS, add_console_routes
from shared.settings import Settings
from tests.browser import browser_page

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
FLOW = "FW" + "a" * 32
EXECUTION = "FN" + "b" * 32
STEP = "FT" + "c" * 32
SETTINGS = Settings()
AUTH = "Basic " + base64.b64encode(f"{SETTINGS.account_sid}:{SETTINGS.auth_token}".encode()).decode()

DEFINITION: dict[str, Any] = {
    "initial_state": "Trigger", "description": HOSTILE, "flags": {"allow_concurrent_calls": True},
    "states": [
        {"name": "Trigger", "type": "trigger", "properties": {"offset": {"x": 0, "y": 0}},
         "transitions": [{"event": "incomingRequest", "next": HOSTILE}]},
        {"name": HOSTILE, "type": "set-variables", "properties": {"offset": {"x": 0, "y": 200}},
         "transitions": [{"event": "next", "next": None}]},
    ],
}


def _api() -> web.Application:
    """Just the reads the console makes, with Basic auth like the real ingress."""
    flow = {"sid": FLOW, "friendly_name": HOSTILE, "status": "published", "revision": 1, "definition": DEFINITION,
            "valid": True, "date_created": "2026-12-04T10:00:00Z", "date_updated": "2026-12-04T10:00:00Z"}
    execution = {"sid": EXECUTION, "flow_sid": FLOW, "status": "ended", "contact_channel_address": HOSTILE,
                 "date_created": "2026-12-04T10:00:00Z", "date_updated": "2026-12-04T10:00:01Z", "flow_version": 1}
    step = {"sid": STEP, "flow_sid": FLOW, "execution_sid": EXECUTION, "parent_step_sid": None, "name": "incomingRequest",
            "transitioned_from": "Trigger", "transitioned_to": HOSTILE, "date_created": "2026-12-04T10:00:00Z",
            "date_updated": "2026-12-04T10:00:00Z"}
    last = {**step, "sid": "FT" + "d" * 32, "name": "next", "transitioned_from": HOSTILE, "transitioned_to": "Ended"}
    # a step inside a subflow: listed under its Run Subflow step, never matched to this flow's widgets
    nested = {**step, "sid": "FT" + "e" * 32, "parent_step_sid": STEP, "name": "sent", "transitioned_from": "Trigger",
              "transitioned_to": "Ended"}
    meta = {"next_page_url": None, "previous_page_url": None}
    answers = {
        "/v2/Flows": {"flows": [{**flow, "definition": None}], "meta": meta},
        f"/v2/Flows/{FLOW}": flow,
        f"/v2/Flows/{FLOW}/Revisions/1": flow,
        f"/v2/Flows/{FLOW}/Revisions": {"revisions": [{**flow, "definition": None, "commit_message": HOSTILE}], "meta": meta},
        f"/v2/Flows/{FLOW}/Executions": {"executions": [execution], "meta": meta},
        f"/v2/Flows/{FLOW}/Executions/{EXECUTION}": execution,
        f"/v2/Flows/{FLOW}/Executions/{EXECUTION}/Context": {"context": {HOSTILE: HOSTILE}},
        f"/v2/Flows/{FLOW}/Executions/{EXECUTION}/Steps": {"steps": [last, nested, step], "meta": meta},
        f"/v2/Flows/{FLOW}/Executions/{EXECUTION}/Steps/{STEP}/Context": {"context": {"note": HOSTILE}},
    }

    async def read(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != AUTH:
            return web.json_response({"code": 20003, "message": "Authentication Error"}, status=401)
        body = answers.get(request.path)
        return web.json_response(body) if body is not None else web.json_response({"code": 20404}, status=404)

    app = web.Application()
    add_console_routes(app, SETTINGS)
    app.router.add_get("/v2/{tail:.*}", read)
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(_api())) as test_client:
        yield test_client


async def test_the_console_is_served_with_a_policy_that_allows_no_inline_or_foreign_script(client: TestClient[Any, Any]) -> None:
    response = await client.get("/console", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/console/")
    response = await client.get("/console/")
    assert response.status == 200 and response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    script = await client.get("/console/app.js")
    assert script.status == 200 and script.content_type == "text/javascript"


@pytest.mark.parametrize("path", ["/console/console.py", "/console/..%2Fconsole.py", "/console/%2e%2e/app.py",
                                  "/console/missing.js"])
async def test_only_the_console_assets_are_served(client: TestClient[Any, Any], path: str) -> None:
    assert (await client.get(path)).status == 404


async def test_the_console_can_be_turned_off() -> None:
    app = web.Application()
    add_console_routes(app, Settings(console_enabled=False))
    async with TestClient(TestServer(app)) as test_client:
        assert (await test_client.get("/console/")).status == 404


def test_no_asset_hands_data_to_an_html_parser() -> None:
    """Data reaches the page as text nodes only (dom.js); these sinks would parse it as HTML or code."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc|"
                       r"createContextualFragment|DOMParser")
    for path in sorted(ASSETS.glob("*.js")) + [ASSETS / "index.html"]:
        found = [line for line in path.read_text().splitlines() if sinks.search(line) and not line.lstrip().startswith("//")]
        assert found == [], f"{path.name}: {found}"


async def test_refused_credentials_keep_the_sign_in_form_and_say_so(client: TestClient[Any, Any]) -> None:
    async with browser_page() as browser:
        page = browser.page
        await page.goto(str(client.make_url("/console/")))
        await page.fill("#login-user", SETTINGS.account_sid)
        await page.fill("#login-password", "wrong")
        await page.click("#login button[type=submit]")
        await page.wait_for_selector("#login .error:text('Those credentials were refused.')")
        assert await page.evaluate("sessionStorage.length") == 0
        browser.errors.remove("console error: Failed to load resource: the server responded with a status of 401 (Unauthorized)")


async def test_a_flow_named_script_renders_as_text_on_every_page(client: TestClient[Any, Any]) -> None:
    base = str(client.make_url("/console/"))
    async with browser_page() as browser:
        page = browser.page
        await page.goto(base)
        await page.fill("#login-user", SETTINGS.account_sid)
        await page.fill("#login-password", SETTINGS.auth_token)
        await page.click("#login button[type=submit]")
        name = page.locator("#flows td.flow-name a")
        assert await name.text_content() == HOSTILE

        await name.click()
        await page.wait_for_selector("svg.graph g.node")
        assert await page.locator("h1").text_content() == HOSTILE
        assert HOSTILE in (await page.title())
        assert await page.locator("#revision option").text_content() == f"revision 1 · published · {HOSTILE}"
        widget = page.locator("g.node").nth(1)  # the definition's second state, named HOSTILE
        assert await widget.get_attribute("data-name") == HOSTILE
        assert HOSTILE.startswith((await widget.locator("text.name").text_content() or "").rstrip("…"))

        await page.goto(base + f"#/flows/{FLOW}/executions")
        assert await page.locator("#executions tbody td").nth(2).text_content() == HOSTILE

        await page.goto(base + f"#/flows/{FLOW}/executions/{EXECUTION}")
        await page.wait_for_selector("#context .json-key")
        assert await page.locator("#context .json-key").first.text_content() == HOSTILE
        assert await page.locator("#context .json-string").first.text_content() == json.dumps(HOSTILE)
        assert await page.locator("#steps tr.nested td").first.text_content() == "↳"
        assert await page.locator("g.node[data-name='Trigger'] .steps-badge").text_content() == "1"
        await page.locator("#steps tr.step").first.click()
        await page.wait_for_selector("#context .json-key:text('note')")
        await browser.screenshot("escaping-execution")

        # nothing the data said became markup or ran
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("main script, main img, svg script").count() == 0
