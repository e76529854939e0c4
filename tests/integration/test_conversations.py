"""Conversations end to end: ``onMessageAdded`` webhooks (the Twilio simulator) start and resume executions whose
messages go into the conversation through the Conversations API played locally (``messages_api``); the
conformance flow 28 (Flex's park-interaction template) runs to its hand-off to Flex."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest

from devtools.simulator import Simulator
from tests.conftest import require_conformance
from tests.integration.conftest import FLEX_WORKSPACE
from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import context, definition, only_execution, path, w

WORKFLOW = "WW" + "8" * 32
TASK_CHANNEL = "TC" + "9" * 32
PARKING_FLOW = "28-twilio-professional-services-messaging-with-parking.json"


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


def conversation() -> str:
    return "CH" + uuid.uuid4().hex


async def test_a_conversation_message_starts_a_flow_that_talks_back_in_the_conversation(
        api: Any, sim: Simulator, messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(definition(
        "ask",
        w("ask", "send-and-wait-for-reply", {"incomingMessage": "echo", "timeout": None, "deliveryFailure": None},
          body="Hi {{trigger.conversation.From}}, what's your name?", timeout="3600"),
        w("echo", "send-message", {"sent": None, "failed": None}, body="Nice to meet you, {{widgets.ask.inbound.Body}}"),
        trigger="incomingConversationMessage"))
    sid = conversation()
    transcript = await sim.conversation(flow_sid, "hello", sid, author="+15550102222")
    assert not transcript.of("error")
    (asked,) = await messages_api.wait_for_conversation(sid)
    assert asked["body"] == "Hi +15550102222, what's your name?" and asked["author"] == "system"
    await sim.conversation(flow_sid, asked["body"], sid, author="system", source="API")  # the flow's own: ignored
    await sim.conversation(flow_sid, "Ann", sid, author="+15550102222")
    messages = await messages_api.wait_for_conversation(sid, 2)
    assert messages[1]["body"] == "Nice to meet you, Ann"
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"])) == [
        ("incomingConversationMessage", "Trigger", "ask"), ("incomingMessage", "ask", "echo"), ("sent", "echo", "Ended")]
    ctx = await context(api, flow_sid, execution["sid"])
    assert ctx["trigger"]["conversation"]["ConversationSid"] == sid
    assert ctx["contact"]["channel"]["address"] == "+15550102222"
    assert ctx["widgets"]["ask"]["outbound"]["Sid"] == asked["sid"]


async def test_the_parking_template_hands_the_conversation_to_flex(
        api: Any, sim: Simulator, messages_api: MessagesApi) -> None:
    folder = require_conformance()
    text = (folder / PARKING_FLOW).read_text()
    # The template is deployed by Terraform, which fills in these two variables.
    definition_ = json.loads(text.replace("${WORKFLOW_SID}", WORKFLOW).replace("${CHAT_CHANNEL_SID}", TASK_CHANNEL))
    flow_sid = await api.create_flow(definition_, name=PARKING_FLOW)
    sid, customer = conversation(), "whatsapp:+15550103333"
    await sim.conversation(flow_sid, "Hi there", sid, author=customer, source="WHATSAPP")
    (welcome,) = await messages_api.wait_for_conversation(sid)
    assert welcome["body"].startswith("Ahoy! To better assist you")
    await sim.conversation(flow_sid, "I need SALES please", sid, author=customer, source="WHATSAPP")
    interaction = await messages_api.wait_for_interaction(sid)
    assert interaction["channel"] == {**interaction["channel"], "type": "whatsapp", "initiated_by": "customer",
                                      "properties": {"media_channel_sid": sid}}
    properties = interaction["routing"]["properties"]
    assert (properties["workspace_sid"], properties["workflow_sid"], properties["task_channel_sid"]) == (
        FLEX_WORKSPACE, WORKFLOW, TASK_CHANNEL)
    assert properties["attributes"]["selected_queue"] == "sales"
    assert properties["attributes"]["conversationSid"] == sid
    bodies = [m["body"] for m in messages_api.conversation_messages(sid)]
    assert bodies[1].startswith("Thanks! Please wait while I locate a sales representative")
    execution = await only_execution(api, flow_sid)
    assert path(await api.steps(flow_sid, execution["sid"])) == [
        ("incomingConversationMessage", "Trigger", "send_welcome"), ("incomingMessage", "send_welcome", "select_queue"),
        ("match", "select_queue", "set_sales"), ("next", "set_sales", "send_please_wait"),
        ("sent", "send_please_wait", "send_to_flex"), ("callComplete", "send_to_flex", "Ended")]
