"""End to end over a real broker: REST start → processor → http-worker → processor → steps over REST."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.conftest import load_fixture


async def test_a_rest_started_execution_runs_through_an_http_request_and_a_split(api: Any, http_server: Any) -> None:
    seen: list[dict[str, str]] = []

    async def person(request: web.Request) -> web.Response:
        seen.append(dict(request.query) | {"idempotency": request.headers.get("Idempotency-Key", "")})
        return web.json_response({"message": "Hi", "person": {"name": "Bob", "age": 40}})

    app = web.Application()
    app.router.add_get("/person", person)
    base = await http_server(app)

    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"))
    created = await api.start(flow_sid, params={"name": "Ann", "base_url": base})
    assert created["sid"].startswith("FN") and created["flow_sid"] == flow_sid
    execution = await api.wait_ended(flow_sid, created["sid"])

    code, context = await api.get(f"/v2/Flows/{flow_sid}/Executions/{created['sid']}/Context")
    assert code == 200
    ctx = context["context"]
    assert ctx["widgets"]["lookup"]["parsed"]["person"]["name"] == "Bob"
    assert ctx["widgets"]["lookup"]["status_code"] == 200
    assert ctx["flow"]["variables"] == {"greeting": "Hello Ann", "result": "bob 40"}
    assert ctx["flow"]["data"] == {"name": "Ann", "base_url": base}
    assert execution["status"] == "ended"

    steps = await api.steps(flow_sid, created["sid"])
    assert [(s["name"], s["transitioned_from"], s["transitioned_to"], s["type"]) for s in steps] == [
        ("incomingRequest", "Trigger", "set_greeting", "trigger"),
        ("next", "set_greeting", "lookup", "set-variables"),
        ("success", "lookup", "check", "make-http-request"),
        ("match", "check", "mark_bob", "split-based-on"),
        ("next", "mark_bob", "Ended", "set-variables"),
    ]
    assert all(s["sid"].startswith("FT") for s in steps)
    lookup_step = steps[2]
    code, step_context = await api.get(
        f"/v2/Flows/{flow_sid}/Executions/{created['sid']}/Steps/{lookup_step['sid']}/Context")
    assert code == 200 and step_context["context"]["widgets"]["lookup"]["parsed"]["message"] == "Hi"
    assert len(seen) == 1 and seen[0]["greeting"] == "Hello Ann" and seen[0]["idempotency"].startswith("RQ")


async def test_a_second_execution_for_an_active_contact_gets_409_20409(api: Any, http_server: Any) -> None:
    import asyncio

    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 20)
        return web.json_response({"person": {"name": "Eve"}})

    app = web.Application()
    app.router.add_get("/person", slow)
    base = await http_server(app)
    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"))
    first = await api.start(flow_sid, to="+15550000409", params={"base_url": base})
    code, body = await api.post(f"/v2/Flows/{flow_sid}/Executions",
                                {"To": "+15550000409", "From": "+15559990000"})
    assert code == 409 and body["code"] == 20409 and body["status"] == 409
    release.set()
    await api.wait_ended(flow_sid, first["sid"])
