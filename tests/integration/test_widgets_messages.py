"""Send Message and Send & Wait For Reply end to end: real broker, the four services, Twilio's Messages API
played locally (``messages_api``) and inbound SMS sent by the Twilio simulator (signed webhooks)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devtools.simulator import Simulator
from tests.integration.messages_api import INVALID_NUMBER, MessagesApi
from tests.integration.widget_flows import context, definition, only_execution, parked_on, path, phone, w

CHANNEL = "+15559990000"


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


async def test_send_message_sends_through_the_messages_api_and_takes_sent(api: Any, messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(definition(
        "greet", w("greet", "send-message", {"sent": None, "failed": None},
                   body="Hello {{flow.data.name}}", to="{{contact.channel.address}}")))
    contact = phone()
    created = await api.start(flow_sid, to=contact, from_=CHANNEL, params={"name": "Ann"})
    (message,) = await messages_api.wait_for(contact)
    assert (message["from"], message["body"], message["status"]) == (CHANNEL, "Hello Ann", "queued")
    assert message["token"].startswith("RQ")
    await api.wait_ended(flow_sid, created["sid"])
    steps = await api.steps(flow_sid, created["sid"])
    assert path(steps)[-1] == ("sent", "greet", "Ended")
    outbound = (await context(api, flow_sid, created["sid"]))["widgets"]["greet"]["outbound"]
    assert outbound["Sid"] == message["sid"] and outbound["Status"] == "queued" and outbound["To"] == contact


async def test_a_message_twilio_refuses_takes_failed_with_twilios_error(api: Any, messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(definition(
        "greet", w("greet", "send-message", {"sent": None, "failed": None}, body="Hi")))
    created = await api.start(flow_sid, to=INVALID_NUMBER, from_=CHANNEL)
    await api.wait_ended(flow_sid, created["sid"])
    assert path(await api.steps(flow_sid, created["sid"]))[-1] == ("failed", "greet", "Ended")
    error = (await context(api, flow_sid, created["sid"]))["widgets"]["greet"]["error"]
    assert error == f"Twilio error 21211: The 'To' number {INVALID_NUMBER} is not a valid phone number. (HTTP 400)"
    assert messages_api.messages(INVALID_NUMBER) == []


def ask_and_echo(timeout: str = "3600") -> dict[str, Any]:
    return definition(
        "ask",
        w("ask", "send-and-wait-for-reply", {"incomingMessage": "echo", "timeout": "late", "deliveryFailure": None},
          body="What is your name?", timeout=timeout, **{"from": "{{flow.channel.address}}"}),
        w("echo", "send-message", {"sent": None, "failed": None},
          body="Nice to meet you, {{widgets.ask.inbound.Body}}", to="{{contact.channel.address}}"),
        w("late", "send-message", {"sent": None, "failed": None}, body="Too late."),
    )


async def test_send_and_wait_resumes_on_the_contacts_reply_with_inbound_variables(
        api: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid = await api.create_flow(ask_and_echo())
    contact = phone()
    created = await api.start(flow_sid, to=contact, from_=CHANNEL)
    (question,) = await messages_api.wait_for(contact)
    assert question["body"] == "What is your name?"
    await parked_on(api, flow_sid, created["sid"], "ask")
    transcript = await sim.message(flow_sid, "Bob", from_=contact, to=CHANNEL)
    assert "error" not in [t.kind for t in transcript.turns]
    question, answer = await messages_api.wait_for(contact, 2)
    assert answer["body"] == "Nice to meet you, Bob"
    await api.wait_ended(flow_sid, created["sid"])
    ask = (await context(api, flow_sid, created["sid"]))["widgets"]["ask"]
    assert ask["inbound"]["Body"] == "Bob" and ask["inbound"]["From"] == contact
    assert ask["inbound"]["MessageSid"] == transcript.sid
    assert ask["outbound"]["Sid"] == question["sid"]
    assert [e["sid"] for e in await _executions(api, flow_sid)] == [created["sid"]]  # the reply started nothing


async def test_send_and_wait_takes_timeout_when_no_reply_comes(api: Any, messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(ask_and_echo(timeout="2"))
    contact = phone()
    created = await api.start(flow_sid, to=contact, from_=CHANNEL)
    await api.wait_ended(flow_sid, created["sid"], timeout=30)
    assert [s[0] for s in path(await api.steps(flow_sid, created["sid"]))] == ["incomingRequest", "timeout", "sent"]
    assert [m["body"] for m in messages_api.messages(contact)] == ["What is your name?", "Too late."]


async def test_an_incoming_message_starts_a_flow_whose_send_and_wait_takes_the_next_message(
        api: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid = await api.create_flow({**ask_and_echo(), "states": [
        {**ask_and_echo()["states"][0], "transitions": [{"event": "incomingMessage", "next": "ask"}]},
        *ask_and_echo()["states"][1:]]})
    contact = phone()
    await sim.message(flow_sid, "hi", from_=contact, to=CHANNEL)
    await messages_api.wait_for(contact)
    execution = await only_execution(api, flow_sid, ended=False)
    await parked_on(api, flow_sid, execution["sid"], "ask")
    await sim.message(flow_sid, "Carol", from_=contact, to=CHANNEL)
    await api.wait_ended(flow_sid, execution["sid"])
    assert [m["body"] for m in messages_api.messages(contact)] == ["What is your name?", "Nice to meet you, Carol"]
    ctx = await context(api, flow_sid, execution["sid"])
    assert ctx["trigger"]["message"]["Body"] == "hi" and ctx["widgets"]["ask"]["inbound"]["Body"] == "Carol"


async def _executions(api: Any, flow_sid: str) -> list[dict[str, Any]]:
    code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions?PageSize=50")
    assert code == 200
    return list(body["executions"])
