"""Every voice flow in the conformance set, called through the Twilio simulator until its execution ends.

The flows are real Studio exports. Their Run Function / HTTP URLs point at
Twilio Functions on the internet; here they are re-pointed (same path) at a
local stub that answers what the flow expects, and TwiML Redirect URLs at a
local TwiML app. The cluster's Twilio API base is the local stand-in
(``messages_api``): flow 21 starts and stops recording the call through its
Call Recordings API and texts the recording's Sid through its Messages API.
Widgets Switchboard does not run yet end the execution with 81002 — which is
still an end.

Flow 31 (an autodialer) starts over REST, not with a call: its Make Outgoing
Call widget asks the stand-in's Calls API for a call to the contact, and the
simulator then plays Twilio placing it (``Simulator.answer``): answered (the
announcement, then the call is enqueued to a TaskRouter workflow), busy or not
answered (the flow texts the contact instead), or refused by the Calls API.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from devtools.simulator import CallScript, Simulator, Transcript, twiml_app
from tests.conftest import CONFORMANCE, require_conformance
from tests.integration.messages_api import INVALID_NUMBER, MessagesApi


@pytest.fixture(autouse=True)
def _needs_the_corpus() -> None:
    """Every test here runs a real Studio export: skipped (one line) when the corpus is not beside the checkout."""
    require_conformance()


STUB_ANSWERS: dict[str, Any] = {
    "/uk-business-hours": "open",  # 07: split_2 starts_with "open"
    "/googlemaps/coordinates": {"coordinates": "51.5203,-0.0846", "formatted_address": "London EC2"},  # 09
    "/what3words/to-w3words": {"words": "index.home.raft", "map": "https://w3w.co/index.home.raft"},  # 09
    "/allow": {"matched": True},  # 15
    "/httpRequest": "+15550142222",  # 15: the number to forward to
    "/check-schedule": {"isOpen": False, "closedReason": "holiday"},  # 29
}


@dataclass
class Case:
    file: str
    script: CallScript = field(default_factory=CallScript)
    extra: Mapping[str, str] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)  # the first things the caller hears, in order
    hears: list[str] = field(default_factory=list)  # heard at some point
    last_step: tuple[str, str] | None = None  # (event, from widget) of the last step, when it is certain
    app_returns: list[dict[str, str]] | None = None  # what the TwiML app returns with, per redirect
    recordings: tuple[str, ...] = ()  # status of each recording the call's Call Recording widgets made, in order
    texted: str | None = None  # a number the flow texts a message naming the call and its first recording


CASES = [
    Case("07-creatal-white-rabbit-ivr-template.json",
         CallScript(inputs=["1"], dial_status="no-answer", record="message"),
         said=["Thank you for calling <Your Company Name>. Please hold to be connected.",
               "Sorry we can't take your call right now. Please leave a message and we will get back to you as soon "
               "as possible."],
         last_step=("recordingComplete", "record_voicemail_1")),
    Case("09-dsmwong-what3words.json", CallScript(inputs=["speech:Old Street London"]),
         said=["Please say a place",
               "I heard Old Street London . The three word address for London EC2 is index.home.raft"]),
    Case("11-gbernz-ivr-builder-flowtemplate.json", CallScript(inputs=["speech:one", "speech:yes"]),
         said=["Response message...", "You can say...", "Thank you, I heard one. Is this correct?",
               "Thank you, please wait a moment while I connect your call.",
               "I'm sorry, I don't understand what you said.", "You can say..."]),
    Case("15-mbarry-owl-order-lookup-ivr.json", CallScript(inputs=["12345"]),
         said=["Please enter the order number.", "Thank you, you're now being connected with the customer."],
         last_step=("callCompleted", "forward_call")),
    Case("17-mgmuscari-foodnow-fallback-flow.json",
         said=["I'm sorry, but our automated system can't help you at this time. Please hold while I connect you "
               "to the ACCFB Emergency Food Helpline."],
         last_step=("callCompleted", "connect_to_helpline")),
    Case("19-sheikplastk-firstPrototype2.json", CallScript(inputs=["1", "0"]),
         hears=["Our list of products includes:\n\nPlastic credit card, \n\nand so on.",
                "You will be redirected to our best rep shortly."]),
    Case("21-tigerfarm-voice-gather-until-code.json", CallScript(inputs=["456", "123"]),
         said=["Annoucement, turning call recording on.", "Record until entered 1 2 3",
               "Recording completed,\nstop recording."],
         last_step=("sent", "send_message_1"), recordings=("stopped",), texted="+16505552222"),
    Case("23-twilio-demos-dtolb-gd-poc.json", extra={"HandoffData": '{"conversationId": "CH123"}'},
         last_step=("callCompleted", "ring_browser_agent")),
    Case("29-twilio-professional-services-schedule-flow.json",
         last_step=("audioComplete", "say_closed")),
    Case("40-bruno222-transfer-to-ivr-docs.json", CallScript(inputs=["2", "1"]),
         said=["Welcome to Twilio! Press 1 to Sales or 2 to Services",
               "Welcome to Services, please wait while I forward your call to one of your specialists.",
               "Connecting you to Flex.", "Welcome to Twilio! Press 1 to Sales or 2 to Services",
               "Welcome to Sales, please wait while I forward your call to one of your specialists.",
               "Connecting you to Flex."],
         last_step=("noMatch", "backToIVRSplit"),
         app_returns=[{"transferToIVRMenu": "main"}, {"transferToIVRMenu": "elsewhere"}]),
    Case("42-ConnieML-docs-voicemail-only-flow-template.json",
         said=["Thank you for calling. Please leave your message after the tone.", "Connecting you to Flex."]),
]


def _repoint(definition: dict[str, Any], stub: str, app: str) -> dict[str, Any]:
    """Point every outbound URL of the flow at this machine, keeping its path."""
    for state in definition["states"]:
        props = state.get("properties", {})
        url = props.get("url")
        if not isinstance(url, str) or not url or state["type"] not in (
                "run-function", "make-http-request", "add-twiml-redirect"):
            continue
        path = urlsplit(url.replace("${", "").replace("}", "")).path or "/"
        if state["type"] == "add-twiml-redirect":
            props["url"] = f"{app}{path}?flow={{{{flow.flow_sid}}}}"
        else:
            props["url"] = f"{stub}{path}"
    return definition


def _stub() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        body = STUB_ANSWERS.get(request.path, {"ok": True})
        if isinstance(body, str):
            return web.Response(text=body, content_type="text/plain")
        return web.json_response(body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def _ended(api: Any, flow_sid: str, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions")
        found = body.get("executions", []) if code == 200 else []
        if len(found) == 1 and found[0]["status"] == "ended":
            return dict(found[0])
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the execution of {flow_sid} did not end: {found}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("case", CASES, ids=[c.file[:2] for c in CASES])
async def test_a_conformance_voice_flow_runs_through_the_simulator_to_an_end(
        case: Case, api: Any, cluster: Any, settings: Any, http_server: Any, messages_api: MessagesApi) -> None:
    stub = await http_server(_stub())
    app = await http_server(twiml_app("Connecting you to Flex.", case.app_returns,
                                      base_url=cluster.ingress_url if case.app_returns else None))
    definition = _repoint(json.loads((CONFORMANCE / case.file).read_text()), stub, app)
    flow_sid = await api.create_flow(definition, name=case.file)
    async with aiohttp.ClientSession() as session:
        simulator = Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)
        transcript: Transcript = await simulator.call(flow_sid, case.script, extra=case.extra)
    print(transcript)  # shown with -s, and by pytest when the test fails

    assert not transcript.of("error"), str(transcript)
    assert transcript.said[:len(case.said)] == case.said, str(transcript)
    assert all(text in transcript.said for text in case.hears), str(transcript)
    execution = await _ended(api, flow_sid)
    steps = await api.steps(flow_sid, execution["sid"])
    assert steps[0]["name"] == "incomingCall"
    if case.last_step is not None:
        assert (steps[-1]["name"], steps[-1]["transitioned_from"]) == case.last_step, steps[-1]
    recordings = messages_api.recordings(transcript.sid)
    assert [r["status"] for r in recordings] == list(case.recordings), recordings
    if case.texted is not None:
        bodies = [m["body"] for m in messages_api.messages(case.texted)]
        assert any(transcript.sid in b and recordings[0]["sid"] in b for b in bodies), bodies


async def test_the_voicemail_flow_answers_an_sms_with_81002_because_say_play_needs_a_call(
        api: Any, cluster: Any, settings: Any) -> None:
    definition = json.loads((CONFORMANCE / "42-ConnieML-docs-voicemail-only-flow-template.json").read_text())
    flow_sid = await api.create_flow(definition)
    async with aiohttp.ClientSession() as session:
        simulator = Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)
        transcript = await simulator.message(flow_sid, "hello?")
    assert not transcript.of("error") and transcript.messages == []
    execution = await _ended(api, flow_sid)
    steps = await api.steps(flow_sid, execution["sid"])
    assert [(s["name"], s["transitioned_from"]) for s in steps] == [("incomingMessage", "Trigger"),
                                                                    ("81002", "welcome_message")]


AUTODIALER = "31-vernig-autodialer.json"
REASON = "renew your contract"
AUTODIALER_PATHS = {
    "answer": [("answered", "initate_call", "announce"), ("audioComplete", "announce", "enqueue"),
               ("callComplete", "enqueue", "Ended")],
    "busy": [("busy", "initate_call", "send_message"), ("sent", "send_message", "Ended")],
    "no-answer": [("noAnswer", "initate_call", "send_message"), ("sent", "send_message", "Ended")],
    "refused": [("failed", "initate_call", "Ended")],
}


@pytest.mark.parametrize("outcome", list(AUTODIALER_PATHS))
async def test_the_autodialer_calls_the_contact_through_the_simulator_to_its_end(
        outcome: str, api: Any, cluster: Any, settings: Any, messages_api: MessagesApi) -> None:
    definition = json.loads((CONFORMANCE / AUTODIALER).read_text())
    flow_sid = await api.create_flow(definition, name=AUTODIALER)
    contact = INVALID_NUMBER if outcome == "refused" else f"+1555{uuid.uuid4().int % 10**7:07d}"
    created = await api.start(flow_sid, to=contact, params={"reason": REASON, "ui": "desk-7"})
    assert created["status"] == "active"
    if outcome != "refused":
        call = await messages_api.wait_for_call(contact)
        sent = call["form"]
        assert (sent["To"], sent["From"], sent["Timeout"], sent["MachineDetection"]) == (
            contact, "+15559990000", "20", "Enable")
        assert "Record" not in sent and sent["Url"].startswith(f"{cluster.ingress_url}/v1/Accounts/")
        async with aiohttp.ClientSession() as session:
            simulator = Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)
            script = CallScript(outcome=outcome, queue_result="bridged")
            transcript = await simulator.answer(sent, script, call["sid"])
        print(transcript)  # shown with -s, and by pytest when the test fails
        assert not transcript.of("error"), str(transcript)
    execution = await _ended(api, flow_sid)
    steps = await api.steps(flow_sid, execution["sid"])
    assert [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps] == [
        ("incomingRequest", "Trigger", "initate_call"), *AUTODIALER_PATHS[outcome]]
    code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions/{execution['sid']}/Context")
    assert code == 200, body
    placed = body["context"]["widgets"]["initate_call"]
    if outcome == "answer":
        assert transcript.said == [f"Hello, we are calling you today to  {REASON} . Please wait while we connect "
                                   "you with an agent."], str(transcript)
        (enqueue,) = transcript.of("enqueue")
        assert enqueue.attrs["workflowSid"] == "WW573b22630835278b6ae66155e7a59fd7"
        assert (placed["CallSid"], placed["AnsweredBy"], placed["Direction"]) == (call["sid"], "human", "outbound-api")
        assert body["context"]["widgets"]["enqueue"]["QueueResult"] == "bridged"
    elif outcome == "refused":
        assert "21217" in placed["error"] and messages_api.calls(contact) == []
    else:
        assert (placed["CallSid"], placed["CallStatus"]) == (call["sid"], outcome)
        assert not transcript.said
        (message,) = messages_api.messages(contact)
        assert message["body"] == (f"Hi, we tried to reach you today to discuss about {REASON}. Please give us a "
                                   "call a callback")
