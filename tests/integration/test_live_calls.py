"""Live calls end to end: the Twilio simulator against the flow webhook, over a real broker and the four services.

The cluster runs with ``SWITCHBOARD_WEBHOOK_REPLY_BUDGET_SECONDS=3`` and
signature checking on; the simulator signs every request like Twilio.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devtools.simulator import CallScript, Simulator, twiml_app

TRIGGER = "Trigger"


def definition(first: str, *states: dict[str, Any], concurrent: bool = True,
               trigger: str = "incomingCall") -> dict[str, Any]:
    return {
        "initial_state": TRIGGER, "description": "live call test", "flags": {"allow_concurrent_calls": concurrent},
        "states": [{"name": TRIGGER, "type": "trigger", "properties": {"offset": {"x": 0, "y": 0}},
                    "transitions": [{"event": trigger, "next": first}]}, *states],
    }


def w(name: str, type_: str, transitions: dict[str, str | None], **props: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "properties": props,
            "transitions": [{"event": e, "next": n} for e, n in transitions.items()]}


def say(name: str, text: str, nxt: str | None = None) -> dict[str, Any]:
    return w(name, "say-play", {"audioComplete": nxt}, say=text, voice="Polly.Joanna", loop=1)


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


async def executions(api: Any, flow_sid: str) -> list[dict[str, Any]]:
    code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions?PageSize=50")
    assert code == 200, body
    return list(body["executions"])


async def only_execution(api: Any, flow_sid: str, timeout: float = 30) -> dict[str, Any]:
    """The flow's one execution, once it has ended."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await executions(api, flow_sid)
        if len(found) == 1 and found[0]["status"] == "ended":
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no single ended execution for {flow_sid}: {found}")
        await asyncio.sleep(0.1)


async def ended_steps(api: Any, flow_sid: str) -> tuple[dict[str, Any], list[tuple[str, str, str]], dict[str, Any]]:
    execution = await only_execution(api, flow_sid)
    steps = await api.steps(flow_sid, execution["sid"])
    code, context = await api.get(f"/v2/Flows/{flow_sid}/Executions/{execution['sid']}/Context")
    assert code == 200
    return execution, [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps], context["context"]


# -- TwiML Redirect ------------------------------------------------------------------------------


async def test_the_source_page_example_redirects_to_a_twiml_app_that_returns_with_foo_bar(
        api: Any, sim: Simulator, http_server: Any, cluster: Any, settings: Any) -> None:
    seen: list[dict[str, str]] = []
    app = await http_server(twiml_app("Returning you back to the Studio Flow.", {"foo": "bar"},
                                      base_url=cluster.ingress_url, auth_token=settings.auth_token, seen=seen))
    flow_sid = await api.create_flow(definition(
        "twiml_service",
        w("twiml_service", "add-twiml-redirect", {"return": "said", "timeout": None, "fail": None},
          url=app + "/voicemail?flow={{flow.flow_sid}}&Digits=7", method="POST", timeout="14400"),
        say("said", "The app said foo is {{widgets.twiml_service.foo}}")))

    transcript = await sim.call(flow_sid)

    assert transcript.said == ["Returning you back to the Studio Flow.", "The app said foo is bar"], str(transcript)
    assert not transcript.of("error")
    _, steps, context = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "twiml_service"), ("return", "twiml_service", "said"),
                     ("audioComplete", "said", "Ended")]
    assert context["widgets"]["twiml_service"]["foo"] == "bar"
    assert context["widgets"]["twiml_service"]["CallSid"] == transcript.sid
    assert len(seen) == 1 and seen[0]["Digits"] == "7" and seen[0]["CallSid"] == transcript.sid  # signed, checked


async def test_a_redirect_without_a_return_takes_timeout_when_its_timer_fires(
        api: Any, sim: Simulator, http_server: Any) -> None:
    app = await http_server(twiml_app("You are in the queue."))  # never returns control
    flow_sid = await api.create_flow(definition(
        "away",
        w("away", "add-twiml-redirect", {"return": "back", "timeout": "note", "fail": None}, url=app + "/q",
          timeout="2"),
        say("back", "never"),
        w("note", "set-variables", {"next": None}, variables=[{"key": "timed_out", "value": "yes"}])))

    # The app keeps the call (no status callback yet): only the flow's timer can move it on.
    transcript = await sim.call(flow_sid, CallScript(status_callback=False))

    assert transcript.said == ["You are in the queue."]
    _, steps, context = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "away"), ("timeout", "away", "note"), ("next", "note", "Ended")]
    assert context["flow"]["variables"] == {"timed_out": "yes"}


async def test_a_return_after_the_timeout_is_ignored(api: Any, sim: Simulator, http_server: Any) -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.path)
        await asyncio.wait_for(release.wait(), 20)
        return web.json_response({"ok": True})

    stub = web.Application()
    stub.router.add_route("*", "/log", slow)
    base = await http_server(stub)
    app = await http_server(twiml_app("Hold on."))
    flow_sid = await api.create_flow(definition(
        "away",
        w("away", "add-twiml-redirect", {"return": "back", "timeout": "log"}, url=app + "/", timeout="1"),
        say("back", "never"),
        w("log", "make-http-request", {"success": None, "failed": None}, url=base + "/log", method="GET",
          content_type="application/x-www-form-urlencoded;charset=utf-8")))
    transcript = await sim.call(flow_sid, CallScript(status_callback=False))
    deadline = asyncio.get_running_loop().time() + 20
    while not calls:  # the timer fired and the flow is now in the HTTP widget after ``timeout``
        assert asyncio.get_running_loop().time() < deadline, "the redirect timer did not fire"
        await asyncio.sleep(0.05)

    late = sim.call_params(transcript.sid, transcript.from_, transcript.to, "in-progress") | {"foo": "late"}
    status, body = await sim.request("POST", sim.webhook_url(flow_sid) + "?FlowEvent=return", late)
    release.set()

    assert status == 200 and body.endswith("<Response />")  # the call is not regained
    _, steps, context = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "away"), ("timeout", "away", "log"), ("success", "log", "Ended")]
    assert "foo" not in context["widgets"].get("away", {})


async def test_a_redirect_url_that_renders_invalid_takes_fail(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition(
        "away",
        w("away", "add-twiml-redirect", {"return": None, "timeout": None, "fail": "sorry"},
          url="{{flow.variables.missing}}not a url"),
        say("sorry", "The redirect failed")))
    transcript = await sim.call(flow_sid)
    assert transcript.said == ["The redirect failed"]
    _, steps, context = await ended_steps(api, flow_sid)
    assert steps[:2] == [("incomingCall", "Trigger", "away"), ("fail", "away", "sorry")]
    assert "not a valid" in context["widgets"]["away"]["error"]


async def test_timeout_zero_hands_the_call_over_and_takes_timeout_at_once(
        api: Any, sim: Simulator, http_server: Any, cluster: Any) -> None:
    app = await http_server(twiml_app("Handed over.", {"foo": "bar"}, base_url=cluster.ingress_url))
    flow_sid = await api.create_flow(definition(
        "away",
        w("away", "add-twiml-redirect", {"return": "back", "timeout": "note"}, url=app + "/?flow={{flow.flow_sid}}",
          timeout="0"),
        say("back", "never"),
        w("note", "set-variables", {"next": None}, variables=[{"key": "handed_over", "value": "yes"}])))

    transcript = await sim.call(flow_sid)

    # The app's return reaches a flow that no longer waits: it is answered with an empty <Response/>.
    assert transcript.said == ["Handed over."]
    assert [t.text for t in transcript.of("redirect")][-1].endswith("FlowEvent=return&foo=bar")
    _, steps, context = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "away"), ("timeout", "away", "note"), ("next", "note", "Ended")]
    assert context["flow"]["variables"] == {"handed_over": "yes"}


# -- Gather, signatures, concurrency -------------------------------------------------------------


async def test_gather_digits_drive_a_split(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition(
        "menu",
        w("menu", "gather-input-on-call", {"keypress": "route", "speech": None, "timeout": "menu"},
          say="Press 1 for sales or 2 for support", number_of_digits=1, finish_on_key="#", timeout=5),
        {"name": "route", "type": "split-based-on", "properties": {"input": "{{widgets.menu.Digits}}"},
         "transitions": [
             {"event": "noMatch", "next": "other"},
             {"event": "match", "next": "sales", "conditions": [
                 {"friendly_name": "1", "arguments": ["{{widgets.menu.Digits}}"], "type": "equal_to", "value": "1"}]},
             {"event": "match", "next": "support", "conditions": [
                 {"friendly_name": "2", "arguments": ["{{widgets.menu.Digits}}"], "type": "equal_to", "value": "2"}]},
         ]},
        say("sales", "Sales"), say("support", "Support, you pressed {{widgets.menu.Digits}}"), say("other", "Other")))

    transcript = await sim.call(flow_sid, CallScript(inputs=["", "2"]))  # first no input: the menu repeats

    assert transcript.said == ["Press 1 for sales or 2 for support"] * 2 + ["Support, you pressed 2"]
    _, steps, _ = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "menu"), ("timeout", "menu", "menu"), ("keypress", "menu", "route"),
                     ("match", "route", "support"), ("audioComplete", "support", "Ended")]


async def test_a_forged_signature_is_403_and_starts_nothing(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition("hello", say("hello", "Hello")))
    params = sim.call_params("CA" + "f" * 32, "+15550107777", "+15550109999", "ringing")
    status, body = await sim.request("POST", sim.webhook_url(flow_sid), params, signature="Zm9yZ2Vk")
    missing, _ = await sim.request("POST", sim.webhook_url(flow_sid), params, signature="")
    assert status == 403 and missing == 403
    assert '"code":20403' in body.replace(" ", "") and '"status":403' in body.replace(" ", "")

    await sim.call(flow_sid, from_="+15550108888")  # a genuine call afterwards: the barrier for the read model
    found = await only_execution(api, flow_sid)
    assert found["contact_channel_address"] == "+15550108888"


async def test_a_signed_get_webhook_works_like_a_post(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition("hello", say("hello", "Hello over GET")))
    params = sim.call_params("CA" + "a" * 32, "+15550106666", "+15550109999", "ringing")
    status, body = await sim.request("GET", sim.webhook_url(flow_sid), params)
    assert status == 200 and "<Say loop=\"1\" voice=\"Polly.Joanna\">Hello over GET</Say>" in body


async def test_without_concurrent_calls_a_second_call_from_the_same_caller_is_rejected(
        api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition(
        "menu", w("menu", "gather-input-on-call", {"keypress": None}, say="Wait"), concurrent=False))
    first = sim.call_params("CA" + "1" * 32, "+15550105555", "+15550109999", "ringing")
    status, body = await sim.request("POST", sim.webhook_url(flow_sid), first)
    assert status == 200 and "<Gather" in body

    second = await sim.call(flow_sid, from_="+15550105555", script=CallScript(status_callback=False))
    assert [t.text for t in second.of("reject")] == ["busy"]

    await sim.request("POST", sim.webhook_url(flow_sid), first | {"CallStatus": "completed"})
    execution, _, _ = await ended_steps(api, flow_sid)
    assert execution["sid"]  # the first call's execution ended with its status callback


async def test_an_inbound_sms_starts_a_message_execution(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition(
        "note", w("note", "set-variables", {"next": None}, variables=[{"key": "got", "value": "{{trigger.message.Body}}"}]),
        trigger="incomingMessage"))
    transcript = await sim.message(flow_sid, "hello switchboard", from_="+15550104444")
    assert not transcript.of("error")
    _, steps, context = await ended_steps(api, flow_sid)
    assert steps == [("incomingMessage", "Trigger", "note"), ("next", "note", "Ended")]
    assert context["flow"]["variables"] == {"got": "hello switchboard"}
    assert context["contact"]["channel"]["address"] == "+15550104444"


# -- HTTP before the first TwiML widget ----------------------------------------------------------


async def _http_then_say(api: Any, http_server: Any, delay: float, hits: list[float]) -> str:
    async def lookup(request: web.Request) -> web.Response:
        hits.append(delay)
        await asyncio.sleep(delay)
        return web.json_response({"name": "Ann"})

    stub = web.Application()
    stub.router.add_get("/who", lookup)
    base = await http_server(stub)
    return str(await api.create_flow(definition(
        "lookup",
        w("lookup", "make-http-request", {"success": "greet", "failed": "sorry"}, url=base + "/who", method="GET",
          content_type="application/x-www-form-urlencoded;charset=utf-8"),
        say("greet", "Hello {{widgets.lookup.parsed.name}}"), say("sorry", "Lookup failed"))))


async def test_the_webhook_answers_with_the_first_twiml_after_an_http_widget(
        api: Any, sim: Simulator, http_server: Any) -> None:
    hits: list[float] = []
    flow_sid = await _http_then_say(api, http_server, 0.3, hits)
    transcript = await sim.call(flow_sid)
    assert transcript.said == ["Hello Ann"]
    assert not any("keepalive" in t.text for t in transcript.of("redirect"))
    assert len(hits) == 1


async def test_an_http_widget_slower_than_the_budget_keeps_the_call_alive_and_resumes_there(
        api: Any, sim: Simulator, http_server: Any) -> None:
    hits: list[float] = []
    flow_sid = await _http_then_say(api, http_server, 5.0, hits)  # the test cluster's budget is 3 s
    transcript = await sim.call(flow_sid)
    redirects = [t.text for t in transcript.of("redirect")]
    assert any("FlowEvent=keepalive" in r for r in redirects), str(transcript)
    assert transcript.said == ["Hello Ann"]
    assert len(hits) == 1  # the keep-alive did not run the HTTP widget again
    _, steps, _ = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "lookup"), ("success", "lookup", "greet"),
                     ("audioComplete", "greet", "Ended")]


# -- Enqueue Call and Call Recording -------------------------------------------------------------


def _enqueue_flow() -> dict[str, Any]:
    return definition(
        "queue",
        w("queue", "enqueue-call", {"callComplete": "thanks", "failedToEnqueue": "full", "callFailure": "broken"},
          queue_name="support", wait_url="https://hold.example.com/music", wait_url_method="GET"),
        say("thanks", "Thanks for waiting {{widgets.queue.QueueTime}} seconds"), say("full", "The queue is full"),
        say("broken", "Something went wrong"))


@pytest.mark.parametrize("queue_result,said,last", [
    ("bridged", ["Thanks for waiting 42 seconds"], [("callComplete", "queue", "thanks"),
                                                    ("audioComplete", "thanks", "Ended")]),
    ("queue-full", ["The queue is full"], [("failedToEnqueue", "queue", "full"), ("audioComplete", "full", "Ended")]),
    ("hangup", [], [("callComplete", "queue", "thanks")]),
], ids=["bridged", "queue-full", "caller-hangs-up-in-the-queue"])
async def test_an_enqueued_call_resumes_the_flow_on_the_transition_its_queue_result_names(
        api: Any, sim: Simulator, queue_result: str, said: list[str], last: list[tuple[str, str, str]]) -> None:
    flow_sid = await api.create_flow(_enqueue_flow())
    transcript = await sim.call(flow_sid, CallScript(queue_result=queue_result, queue_time=42))
    (enqueued,) = transcript.of("enqueue")
    assert (enqueued.text, enqueued.attrs["waitUrl"], enqueued.attrs["waitUrlMethod"]) == (
        "support", "https://hold.example.com/music", "GET")
    assert transcript.said == said and not transcript.of("error"), str(transcript)
    execution, steps, context = await ended_steps(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "queue"), *last]
    queue = context["widgets"]["queue"]
    assert (queue["QueueResult"], queue["QueueTime"], queue["QueueSid"][:2]) == (queue_result, "42", "QU")
    assert execution["status"] == "ended"


async def test_record_call_on_a_call_twilio_says_is_over_takes_failed_with_twilios_error(
        api: Any, sim: Simulator, messages_api: Any) -> None:
    flow_sid = await api.create_flow(definition(
        "rec", w("rec", "record-call", {"success": "ok", "failed": "ko"}, record_call=True, recording_channels="dual"),
        say("ok", "Recording"), say("ko", "Not recorded: {{widgets.rec.error}}")))
    call_sid = "CA" + "e" * 32
    messages_api.end_call(call_sid)
    transcript = await sim.call(flow_sid, call_sid=call_sid)
    assert transcript.said == ["Not recorded: Twilio error 21220: Invalid call state: the call is not in progress "
                               "(HTTP 400)"], str(transcript)
    (attempt,) = [a for a in messages_api.attempts(api="recordings") if call_sid in a["path"]]
    assert attempt["form"] == {"RecordingChannels": "dual"} and attempt["token"].startswith("RQ")
    assert messages_api.recordings(call_sid) == []
    _, steps, _ = await ended_steps(api, flow_sid)
    assert steps[1] == ("failed", "rec", "ko")
