"""Send to Flex end to end: a call enqueued to a workflow (the Twilio simulator plays the queue), and a message
handed to Flex through the Interactions API played locally (``messages_api``), over a real broker and the services."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from devtools.simulator import CallScript, Simulator
from tests.conftest import load_fixture
from tests.integration.conftest import FLEX_WORKSPACE
from tests.integration.messages_api import UNKNOWN_WORKFLOW, MessagesApi
from tests.integration.widget_flows import context, definition, only_execution, path, phone, w

WORKFLOW = "WW" + "5" * 32
TASK_CHANNEL = "TC" + "6" * 32


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


def flex(trigger: str, workflow: str = WORKFLOW, **events: str | None) -> dict[str, Any]:
    return definition(
        "to_flex",
        w("to_flex", "send-to-flex", {"callComplete": None, "failedToEnqueue": None, "callFailure": None, **events},
          workflow=workflow, channel=TASK_CHANNEL, priority="5", timeout="600",
          attributes='{"type": "inbound", "name": "{{contact.channel.address}}"}'),
        w("thanks", "say-play", {"audioComplete": None}, say="Thanks for waiting: {{widgets.to_flex.QueueResult}}"),
        w("sorry", "send-message", {"sent": None, "failed": None}, body="Sorry: {{widgets.to_flex.error}}"),
        trigger=trigger)


@pytest.mark.parametrize("queue_result,steps_after,said", [
    ("bridged", [("callComplete", "to_flex", "thanks"), ("audioComplete", "thanks", "Ended")],
     ["Thanks for waiting: bridged"]),
    ("hangup", [("callComplete", "to_flex", "thanks")], []),
])
async def test_a_call_sent_to_flex_is_enqueued_to_the_workflow_with_its_task(
        api: Any, sim: Simulator, queue_result: str, steps_after: list[tuple[str, str, str]], said: list[str]) -> None:
    flow_sid = await api.create_flow(flex("incomingCall", callComplete="thanks"))
    transcript = await sim.call(flow_sid, CallScript(queue_result=queue_result), from_="+15550107777")
    (enqueue,) = transcript.of("enqueue")
    assert enqueue.attrs["workflowSid"] == WORKFLOW and transcript.said == said, str(transcript)
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"])) == [("incomingCall", "Trigger", "to_flex"), *steps_after]
    assert (await context(api, flow_sid, execution["sid"]))["widgets"]["to_flex"]["QueueResult"] == queue_result


async def test_a_message_sent_to_flex_becomes_an_interaction_and_the_execution_ends(
        api: Any, sim: Simulator, messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(flex("incomingMessage", callComplete="sorry"))
    contact = phone()
    transcript = await sim.message(flow_sid, "I need help", from_=contact)
    assert not transcript.of("error")
    interaction = await messages_api.wait_for_interaction(contact)
    assert interaction["channel"]["type"] == "sms" and interaction["channel"]["initiated_by"] == "api"
    properties = interaction["routing"]["properties"]
    assert (properties["workspace_sid"], properties["workflow_sid"], properties["task_channel_sid"],
            properties["priority"], properties["timeout"]) == (FLEX_WORKSPACE, WORKFLOW, TASK_CHANNEL, 5, 600)
    assert properties["attributes"] | {"type": "inbound", "name": contact} == properties["attributes"]
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"])) == [
        ("incomingMessage", "Trigger", "to_flex"), ("callComplete", "to_flex", "Ended")]  # not on to "sorry"
    assert (await context(api, flow_sid, execution["sid"]))["widgets"]["to_flex"]["sid"] == interaction["sid"]
    assert messages_api.messages(contact) == []
    (attempt,) = [a for a in messages_api.attempts(api="interactions") if contact in a["form"]["Channel"]]
    assert attempt["token"].startswith("RQ")  # the idempotency key, the same across a crash's repeats
    assert orjson.loads(attempt["form"]["Channel"])["participants"] == [{"address": contact,
                                                                       "proxy_address": "+15550109999"}]


async def test_an_interaction_flex_refuses_takes_failed_to_enqueue(
        api: Any, sim: Simulator, messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(flex("incomingMessage", workflow=UNKNOWN_WORKFLOW, failedToEnqueue="sorry"))
    contact = phone()
    await sim.message(flow_sid, "help", from_=contact)
    (message,) = await messages_api.wait_for(contact)
    assert message["body"].startswith("Sorry: Twilio error 20404:")
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"]))[1:] == [("failedToEnqueue", "to_flex", "sorry"),
                                                                       ("sent", "sorry", "Ended")]


async def test_flexs_default_voice_flow_enqueues_the_caller_with_its_name(api: Any, sim: Simulator) -> None:
    flow_sid = await api.create_flow(load_fixture("flex_voice_ivr_flow.json"))
    transcript = await sim.call(flow_sid, CallScript(queue_result="bridged"), from_="+15550108888")
    (enqueue,) = transcript.of("enqueue")
    assert enqueue.attrs["workflowSid"] == "WW" + "a" * 32, str(transcript)
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"])) == [
        ("incomingCall", "Trigger", "SendCallToAgent"), ("callComplete", "SendCallToAgent", "Ended")]


async def test_flexs_default_messaging_flow_hands_an_sms_to_flex(api: Any, sim: Simulator,
                                                                 messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(load_fixture("flex_messaging_flow.json"))
    contact = phone()
    await sim.message(flow_sid, "hello", from_=contact)
    interaction = await messages_api.wait_for_interaction(contact)
    attributes = interaction["routing"]["properties"]["attributes"]
    assert (attributes["name"], attributes["channelType"], attributes["from"]) == (contact, "sms", contact)
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"]))[-1] == ("callComplete", "SendMessageToAgent", "Ended")
