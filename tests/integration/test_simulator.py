"""The Twilio simulator on its own: against a scripted TwiML server on 127.0.0.1 that checks every signature.

No Kafka here: the server stands in for a flow webhook, so the simulator's
Twilio behaviour (what it requests, with which parameters, in which order) is
pinned exactly.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from devtools.simulator import CallScript, Simulator, twiml_app
from tests.conftest import ROOT

ACCOUNT, TOKEN, FLOW = "AC" + "1" * 32, "simulator-token", "FW" + "2" * 32
PATH = f"/v1/Accounts/{ACCOUNT}/Flows/{FLOW}"

Documents = dict[str, str]  # FlowEvent ("" for the first request) -> TwiML body


class FakeFlow:
    """A flow webhook that answers from a table and records what Twilio (the simulator) sent."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents
        self.seen: list[dict[str, str]] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()} if request.method == "POST" else {}
        url = f"{self.base}{request.raw_path}"
        if not RequestValidator(TOKEN).validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            return web.Response(status=403, text="bad signature")
        params = {**request.query, **form, "_method": request.method}
        self.seen.append(params)
        event = params.get("FlowEvent", "")
        if params.get("CallStatus") == "completed" and not event:
            event = "status"
        body = self.documents.get(event, "<Response/>")
        return web.Response(text=f'<?xml version="1.0" encoding="UTF-8"?>{body}', content_type="application/xml")


@pytest.fixture
async def fake(http_server: Callable[[web.Application], Any]) -> Callable[[Documents], Any]:
    async def make(documents: Documents) -> tuple[FakeFlow, Simulator, aiohttp.ClientSession]:
        flow = FakeFlow(documents)
        app = web.Application()
        app.router.add_route("*", PATH, flow.handle)
        flow.base = await http_server(app)
        session = aiohttp.ClientSession()
        return flow, Simulator(flow.base, ACCOUNT, TOKEN, session), session

    return make


def W(event: str) -> str:  # noqa: N802 - reads like the URL it builds
    return f"{PATH}?FlowEvent={event}"


async def test_a_call_follows_say_gather_redirect_and_ends_with_a_status_callback(fake: Any) -> None:
    flow, sim, session = await fake({
        "": f'<Response><Say voice="alice">Hi</Say><Gather action="{W("keypress")}" numDigits="1">'
            f'<Say>Press</Say></Gather><Redirect>{W("timeout")}</Redirect></Response>',
        "timeout": f'<Response><Play>https://x/a.mp3</Play><Pause length="2"/><Gather action="{W("keypress")}"/>'
                   "</Response>",
        "keypress": "<Response><Say>Bye</Say><Hangup/></Response>",
    })
    async with session:
        transcript = await sim.call(FLOW, CallScript(inputs=["", "7"]), from_="+15550001", to="+15550002")
    assert [(t.kind, t.text) for t in transcript.turns if t.kind != "request"] == [
        ("say", "Hi"), ("say", "Press"), ("gather", "(no input)"), ("redirect", W("timeout")),
        ("play", "https://x/a.mp3"), ("pause", "2"), ("gather", "7"), ("say", "Bye"), ("hangup", "")]
    assert [(p.get("FlowEvent", ""), p["CallStatus"], p.get("Digits")) for p in flow.seen] == [
        ("", "ringing", None), ("timeout", "in-progress", None), ("keypress", "in-progress", "7"),
        ("", "completed", None)]
    first = flow.seen[0]
    assert first["From"] == "+15550001" and first["To"] == "+15550002" and first["AccountSid"] == ACCOUNT
    assert first["CallSid"] == transcript.sid and first["Direction"] == "inbound"
    assert transcript.said == ["Hi", "Press", "Bye"]


async def test_speech_input_posts_speech_result(fake: Any) -> None:
    flow, sim, session = await fake({"": f'<Response><Gather input="speech" action="{W("keypress")}"/></Response>'})
    async with session:
        await sim.call(FLOW, CallScript(inputs=["speech:sales please"], status_callback=False))
    assert flow.seen[1]["SpeechResult"] == "sales please" and "Digits" not in flow.seen[1]


async def test_the_caller_hangs_up_at_a_gather_when_the_script_has_no_input_left(fake: Any) -> None:
    flow, sim, session = await fake({"": f'<Response><Gather action="{W("keypress")}"/></Response>'})
    async with session:
        transcript = await sim.call(FLOW)
    assert transcript.turns[-2].text == "caller hangs up (no scripted input left)"
    assert [p["CallStatus"] for p in flow.seen] == ["ringing", "completed"]


@pytest.mark.parametrize("script,posted", [
    (CallScript(dial_status="no-answer"), {"DialCallStatus": "no-answer", "CallStatus": "in-progress",
                                           "DialCallDuration": "0"}),
    (CallScript(dial_status="completed", hangup_during_dial=True),
     {"DialCallStatus": "completed", "CallStatus": "completed", "DialCallDuration": "12"}),
], ids=["no-answer", "caller-hangs-up"])
async def test_dial_posts_its_action_with_the_scripted_result(fake: Any, script: CallScript,
                                                              posted: dict[str, str]) -> None:
    flow, sim, session = await fake({
        "": f'<Response><Dial action="{W("callCompleted")}" callerId="+1"><Number>+15551</Number>'
            "<Client>bob</Client></Dial></Response>"})
    async with session:
        transcript = await sim.call(FLOW, script, )
    action = flow.seen[1]
    assert action["FlowEvent"] == "callCompleted" and {k: action[k] for k in posted} == posted
    assert action["DialCallSid"].startswith("CA")
    assert transcript.of("dial")[0].text == "Number:+15551, Client:bob"


@pytest.mark.parametrize("mode,events", [
    ("message", ["", "recordingComplete", ""]),
    ("silence", ["", "noAudio", ""]),
    ("hangup", ["", "recordingComplete", ""]),
], ids=["recorded", "silence-skips-the-action", "hangup-after-recording"])
async def test_record_posts_a_recording_or_goes_on_when_silent(fake: Any, mode: str, events: list[str]) -> None:
    flow, sim, session = await fake({
        "": f'<Response><Record action="{W("recordingComplete")}"/><Redirect>{W("noAudio")}</Redirect></Response>'})
    async with session:
        await sim.call(FLOW, CallScript(record=mode))
    assert [p.get("FlowEvent", "") for p in flow.seen] == events
    if mode != "silence":
        assert flow.seen[1]["RecordingUrl"].endswith(flow.seen[1]["RecordingSid"])
        assert flow.seen[1]["CallStatus"] == ("completed" if mode == "hangup" else "in-progress")


@pytest.mark.parametrize("queue_result,call_status,heard", [
    ("hangup", "completed", []),
    ("bridged", "in-progress", ["Back in the flow"]),
    ("queue-full", "in-progress", ["Back in the flow"]),
], ids=["caller-hangs-up-in-the-queue", "bridged-then-back-to-the-flow", "queue-full"])
async def test_enqueue_posts_its_action_with_the_scripted_queue_result(fake: Any, queue_result: str,
                                                                       call_status: str, heard: list[str]) -> None:
    flow, sim, session = await fake({
        "": f'<Response><Enqueue action="{W("callComplete")}" workflowSid="WW1"><Task>{{}}</Task></Enqueue>'
            "</Response>",
        "callComplete": "<Response><Say>Back in the flow</Say></Response>"})
    async with session:
        transcript = await sim.call(FLOW, CallScript(queue_result=queue_result, queue_time=12))
    action = flow.seen[1]
    assert (action["FlowEvent"], action["QueueResult"], action["QueueTime"], action["CallStatus"]) == (
        "callComplete", queue_result, "12", call_status)
    assert action["QueueSid"].startswith("QU") and transcript.of("enqueue")[0].text == "WW1"
    assert transcript.said == heard  # a caller who hung up hears nothing more
    assert [(p.get("FlowEvent", ""), p["CallStatus"]) for p in flow.seen][-1] == ("", "completed")
    assert not transcript.of("error")


@pytest.mark.parametrize("result,call_status,heard", [
    ("success", "in-progress", ["Paid"]), ("validation-error", "in-progress", ["Paid"]),
    ("caller-hung-up", "completed", []),
])
async def test_pay_posts_its_action_with_the_scripted_result(fake: Any, result: str, call_status: str,
                                                             heard: list[str]) -> None:
    flow, sim, session = await fake({
        "": f'<Response><Pay action="{W("payment")}" chargeAmount="9.99" paymentConnector="Stripe">'
            '<Parameter name="order" value="42"/></Pay></Response>',
        "payment": "<Response><Say>Paid</Say></Response>"})
    async with session:
        transcript = await sim.call(FLOW, CallScript(pay_result=result))
    action = flow.seen[1]
    assert (action["FlowEvent"], action["Result"], action["CallStatus"]) == ("payment", result, call_status)
    assert action["PaymentConnector"] == "Stripe"
    if result == "success":  # Twilio's success fields, the card number masked
        assert action["PaymentToken"].startswith("tok_") and action["PaymentConfirmationCode"].startswith("ch_")
        assert action["PaymentCardNumber"] == "xxxx-xxxx-xxxx-1111"
    assert transcript.of("pay")[0].text == result and transcript.said == heard
    assert not transcript.of("error")


async def test_start_and_stop_stream_go_straight_on_with_the_next_verb(fake: Any) -> None:
    flow, sim, session = await fake({
        "": '<Response><Start><Stream name="s1" url="wss://ws.example.com/"/></Start><Say>Streaming</Say>'
            f'<Stop><Stream name="s1"/></Stop><Redirect>{W("next")}</Redirect></Response>',
        "next": "<Response><Say>Done</Say></Response>"})
    async with session:
        transcript = await sim.call(FLOW)
    assert [(t.text, t.attrs.get("name")) for t in transcript.of("stream")] == [("start Stream", "s1"),
                                                                                ("stop Stream", "s1")]
    assert transcript.said == ["Streaming", "Done"] and flow.seen[1]["FlowEvent"] == "next"


@pytest.mark.parametrize("status,call_status", [("completed", "in-progress"), ("live-agent-handoff", "in-progress"),
                                                ("hangup", "completed")])
async def test_a_virtual_agent_hands_the_call_back_with_the_scripted_status(fake: Any, status: str,
                                                                            call_status: str) -> None:
    flow, sim, session = await fake({
        "": f'<Response><Connect action="{W("completed")}"><VirtualAgent connectorName="cx"/></Connect></Response>'})
    async with session:
        transcript = await sim.call(FLOW, CallScript(virtual_agent_status=status))
    action = flow.seen[1]
    assert (action["FlowEvent"], action["VirtualAgentStatus"], action["CallStatus"]) == ("completed", status,
                                                                                         call_status)
    assert action["VirtualAgentProvider"] == "DialogflowCX" and "ConversationId" in action["VirtualAgentProviderData"]
    assert transcript.of("virtual-agent")[0].text == "cx"


async def test_a_redirect_is_followed_to_another_app_and_back_with_get(fake: Any, http_server: Any) -> None:
    seen: list[dict[str, str]] = []
    flow, sim, session = await fake({"return": "<Response><Say>Back</Say></Response>"})
    app = await http_server(twiml_app("In the app", {"foo": "bar"}, return_to=flow.base + PATH,
                                      auth_token=TOKEN, seen=seen))
    flow.documents[""] = f'<Response><Redirect method="GET">{app}/app?x=1</Redirect></Response>'
    async with session:
        transcript = await sim.call(FLOW, CallScript(status_callback=False))
    assert transcript.said == ["In the app", "Back"] and not transcript.of("error")
    assert seen[0]["_method"] == "GET" and seen[0]["x"] == "1" and seen[0]["CallSid"] == transcript.sid
    assert flow.seen[-1]["FlowEvent"] == "return" and flow.seen[-1]["foo"] == "bar"


async def test_a_non_200_answer_ends_the_call_with_an_error_turn(fake: Any) -> None:
    _, sim, session = await fake({})
    sim.validator = RequestValidator("wrong-token")
    async with session:
        transcript = await sim.call(FLOW, CallScript(status_callback=False))
    assert transcript.of("error")[0].text.startswith("HTTP 403")


async def test_an_sms_posts_message_parameters_and_records_message_replies(fake: Any) -> None:
    flow, sim, session = await fake({"": "<Response><Message>Got it</Message><Message><Body>Twice</Body>"
                                         "</Message></Response>"})
    async with session:
        transcript = await sim.message(FLOW, "hello", from_="+15550001")
    sent = flow.seen[0]
    assert sent["Body"] == "hello" and sent["MessageSid"] == transcript.sid and sent["SmsSid"] == transcript.sid
    assert "CallSid" not in sent and sent["From"] == "+15550001"
    assert transcript.messages == ["Got it", "Twice"]


async def test_the_command_line_places_a_call_and_prints_the_transcript(fake: Any) -> None:
    flow, _, session = await fake({
        "": f'<Response><Gather action="{W("keypress")}"><Say>Menu</Say></Gather></Response>',
        "keypress": "<Response><Say>Thanks</Say></Response>"})
    await session.close()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devtools.simulator", "--base-url", flow.base, "--account-sid", ACCOUNT,
        "--auth-token", TOKEN, "call", FLOW, "--input", "3", cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("call CA") and "  say: Menu" in lines and "  gather: 3" in lines
    assert "  say: Thanks" in lines and lines[-1].endswith("CallStatus=completed")
    assert flow.seen[1]["Digits"] == "3"


# -- outbound calls: Twilio placing a call a Calls API request asked for ---------------------------


def outbound_call(base: str, **extra: str) -> dict[str, str]:
    """The form fields of a Calls API request whose Url and StatusCallback point at the fake flow."""
    routing = "FlowExecutionSid=FN1&FlowWait=4"
    return {"To": "+15550002", "From": "+15550001", "Url": f"{base}{PATH}?FlowEvent=answered&{routing}",
            "Method": "POST", "StatusCallback": f"{base}{PATH}?{routing}", "StatusCallbackMethod": "POST", **extra}


async def test_an_answered_outbound_call_requests_its_url_follows_the_twiml_then_reports_completed(fake: Any) -> None:
    flow, sim, session = await fake({
        "answered": f'<Response><Say>Hello</Say><Redirect>{W("audioComplete")}</Redirect></Response>',
        "audioComplete": "<Response><Say>Bye</Say></Response>"})
    async with session:
        transcript = await sim.answer(outbound_call(flow.base, MachineDetection="Enable"),
                                      CallScript(answered_by="machine_start"), call_sid="CA9")
    assert transcript.kind == "outbound-call" and transcript.sid == "CA9" and not transcript.of("error")
    assert transcript.said == ["Hello", "Bye"]
    assert [(p.get("FlowEvent", ""), p["CallStatus"], p.get("FlowWait")) for p in flow.seen] == [
        ("answered", "in-progress", "4"), ("audioComplete", "in-progress", None), ("", "completed", "4")]
    first = flow.seen[0]
    assert (first["Direction"], first["CallSid"], first["From"], first["To"]) == (
        "outbound-api", "CA9", "+15550001", "+15550002")
    assert first["AnsweredBy"] == "machine_start" and "AnsweredBy" not in flow.seen[1]
    assert flow.seen[-1]["CallDuration"] == "30" and flow.seen[-1]["Direction"] == "outbound-api"


async def test_without_machine_detection_an_answered_call_carries_no_answered_by(fake: Any) -> None:
    flow, sim, session = await fake({"answered": "<Response><Say>Hi</Say></Response>"})
    async with session:
        await sim.answer(outbound_call(flow.base), CallScript(status_callback=False))
    assert len(flow.seen) == 1 and "AnsweredBy" not in flow.seen[0]


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed", "canceled"])
async def test_an_unanswered_outbound_call_only_reports_its_final_status(fake: Any, outcome: str) -> None:
    flow, sim, session = await fake({})
    async with session:
        transcript = await sim.answer(outbound_call(flow.base), CallScript(outcome=outcome))
    assert [(p.get("FlowEvent", ""), p["CallStatus"], p["CallDuration"], p["Direction"], p["FlowWait"])
            for p in flow.seen] == [("", outcome, "0", "outbound-api", "4")]
    assert transcript.of("unanswered")[0].text == outcome and transcript.sid.startswith("CA")


async def test_the_command_line_answers_an_outbound_call(fake: Any) -> None:
    flow, _, session = await fake({"answered": "<Response><Say>Hello callee</Say></Response>"})
    await session.close()
    call = outbound_call(flow.base)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devtools.simulator", "--base-url", flow.base, "--account-sid", ACCOUNT,
        "--auth-token", TOKEN, "answer", "--to", call["To"], "--from", call["From"], "--url", call["Url"],
        "--status-callback", call["StatusCallback"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("outbound-call CA") and "  say: Hello callee" in lines
    assert [p["CallStatus"] for p in flow.seen] == ["in-progress", "completed"]
