"""Capture Payments, Fork Stream, Connect Virtual Agent (v1, v2), Make Outgoing Call v1 and a retired widget end to
end: the Twilio simulator plays each TwiML verb against the flow webhook, over a real broker and the four services."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devtools.simulator import CallScript, Simulator
from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import context, definition, only_execution, path, phone, w


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


def say(name: str, text: str, nxt: str | None = None) -> dict[str, Any]:
    return w(name, "say-play", {"audioComplete": nxt}, say=text)


async def ended(api: Any, flow_sid: str) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    execution = await only_execution(api, flow_sid)
    return path(await api.steps(flow_sid, execution["sid"])), await context(api, flow_sid, execution["sid"])


PAY_EVENTS = ("success", "maxFailedAttempts", "providerError", "payInterrupted", "hangup", "validationError")


@pytest.mark.parametrize("result,event,said", [
    ("success", "success", ["Paid: ch_"]), ("payment-connector-error", "providerError", ["providerError"]),
    ("caller-hung-up", "hangup", []),
])
async def test_capture_payments_takes_the_pay_result_and_never_keeps_the_card_number(
        api: Any, sim: Simulator, result: str, event: str, said: list[str]) -> None:
    flow_sid = await api.create_flow(definition(
        "pay",
        w("pay", "capture-payments", {e: e for e in PAY_EVENTS}, payment_connector="Stripe", payment_amount="9.99",
          currency="usd", security_code=True, postal_code="true", max_attempts=2, timeout=5,
          valid_card_types=["visa", "amex"], parameters=[{"key": "order", "value": "42"}]),
        say("success", "Paid: {{widgets.pay.PaymentConfirmationCode | slice: 0, 3}}"),
        *(say(e, e) for e in PAY_EVENTS[1:]), trigger="incomingCall"))
    transcript = await sim.call(flow_sid, CallScript(pay_result=result))
    (pay,) = transcript.of("pay")
    assert (pay.attrs["paymentConnector"], pay.attrs["chargeAmount"], pay.attrs["validCardTypes"]) == (
        "Stripe", "9.99", "visa amex")
    assert transcript.said == said, str(transcript)
    steps, ctx = await ended(api, flow_sid)
    assert steps[1][:2] == (event, "pay")
    stored = ctx["widgets"]["pay"]
    assert stored["Result"] == result and "PaymentCardNumber" not in stored and "SecurityCode" not in stored
    assert "xxxx-xxxx-xxxx-1111" not in str(ctx)


async def test_fork_stream_starts_and_stops_a_stream_around_the_call(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition(
        "start",
        w("start", "fork-stream", {"next": "hello"}, stream_action="start", stream_name="assist",
          stream_url="wss://ws.example.com/{{trigger.call.CallSid}}", stream_track="inbound_track",
          stream_parameters=[{"key": "caller", "value": "{{contact.channel.address}}"}]),
        say("hello", "Hello", "stop"),
        w("stop", "fork-stream", {"next": "bye"}, stream_action="stop", stream_name="assist"),
        say("bye", "Bye"), trigger="incomingCall"))
    transcript = await sim.call(flow_sid)
    assert [(t.text, t.attrs.get("name")) for t in transcript.of("stream")] == [("start Stream", "assist"),
                                                                                ("stop Stream", "assist")]
    assert transcript.said == ["Hello", "Bye"], str(transcript)
    steps, _ = await ended(api, flow_sid)
    assert steps == [("incomingCall", "Trigger", "start"), ("next", "start", "hello"), ("audioComplete", "hello", "stop"),
                     ("next", "stop", "bye"), ("audioComplete", "bye", "Ended")]


V2_EVENTS = ("completed", "live-agent-handoff", "hangup", "failed", "paused", "timeout")


@pytest.mark.parametrize("status", ["completed", "live-agent-handoff"])
async def test_connect_virtual_agent_v2_takes_the_status_the_agent_hands_back(api: Any, sim: Simulator,
                                                                              status: str) -> None:
    flow_sid = await api.create_flow(definition(
        "agent",
        w("agent", "connect-virtual-agent-v2", {e: e for e in V2_EVENTS}, connector_name="cx", channel="voice",
          parameters=[{"key": "caller", "value": "{{contact.channel.address}}"}]),
        *(say(e, f"{e} {{{{widgets.agent.VirtualAgentProviderData.ConversationId}}}}") for e in V2_EVENTS),
        trigger="incomingCall"))
    transcript = await sim.call(flow_sid, CallScript(virtual_agent_status=status))
    assert transcript.said == [f"{status} conv-1"], str(transcript)
    steps, _ = await ended(api, flow_sid)
    assert steps[1] == (status, "agent", status)


async def test_connect_virtual_agent_v1_returns_to_the_flow(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(definition(
        "agent", w("agent", "connect-virtual-agent", {"return": "back", "hangup": None}, connector="es-agent"),
        say("back", "Back from {{widgets.agent.VirtualAgentProvider}}"), trigger="incomingCall"))
    transcript = await sim.call(flow_sid)
    assert transcript.said == ["Back from DialogflowCX"], str(transcript)
    steps, _ = await ended(api, flow_sid)
    assert steps[1] == ("return", "agent", "back")


@pytest.mark.parametrize("answered_by,event", [("human", "answered"), ("machine_start", "answeredByMachine")])
async def test_make_outgoing_call_v1_tells_a_machine_from_a_person(
        api: Any, cluster: Any, settings: Any, messages_api: MessagesApi, answered_by: str, event: str) -> None:
    events = ("answered", "answeredByMachine", "busy", "noAnswer", "failed", "hangup")
    flow_sid = await api.create_flow(definition(
        "call", w("call", "make-outgoing-call-v1", {e: e for e in events}, to="{{contact.channel.address}}",
                  **{"from": "{{flow.channel.address}}"}, detect_answering_machine=True),
        *(say(e, e) for e in events)))
    contact = phone()
    await api.start(flow_sid, to=contact)
    call = await messages_api.wait_for_call(contact)
    async with aiohttp.ClientSession() as session:
        simulator = Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)
        transcript = await simulator.answer(call["form"], CallScript(answered_by=answered_by), call["sid"])
    assert transcript.said == [event], str(transcript)
    steps, ctx = await ended(api, flow_sid)
    assert steps[1:] == [(event, "call", event), ("audioComplete", event, "Ended")]
    assert ctx["widgets"]["call"]["AnsweredBy"] == answered_by


async def test_a_retired_widget_ends_the_execution_with_81002_saying_it_is_retired(api: Any) -> None:
    flow_sid = await api.create_flow(definition("bot", w("bot", "send-to-auto-pilot", {"sessionEnded": None})))
    created = await api.start(flow_sid)
    execution = await api.wait_ended(flow_sid, created["sid"])
    steps = path(await api.steps(flow_sid, execution["sid"]))
    assert steps == [("incomingRequest", "Trigger", "bot"), ("81002", "bot", "Ended")]
    error = (await context(api, flow_sid, execution["sid"]))["error"]
    assert error["code"] == 81002 and "Autopilot, which Twilio has retired" in error["message"]
