"""Conversations: ``incomingConversationMessage`` executions and the messages a flow posts into the conversation."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from shared.messages import HttpRequest, WebhookReceived
from shared.settings import Settings

from .harness import http_result
from .voice_helpers import ACCOUNT, NOW, Store, flow, record, replies, steps, widget

CONVERSATION = "CH" + "c" * 32
CUSTOMER = "+15550001111"
ROUTE = f"FWflow:{CONVERSATION}"
_ids = itertools.count(1)


def conversation_event(body: str = "hi", author: str = CUSTOMER, event_type: str = "onMessageAdded",
                       **params: str) -> WebhookReceived:
    n = next(_ids)
    fields = {"EventType": event_type, "AccountSid": ACCOUNT, "ConversationSid": CONVERSATION,
              "ChatServiceSid": "IS" + "1" * 32, "MessagingServiceSid": "MG" + "2" * 32,
              "MessageSid": f"IM{n:032x}", "Body": body, "Author": author, "Source": "SMS", "Index": str(n),
              "ParticipantSid": "MB" + "3" * 32, "DateCreated": "2026-12-04T15:00:00Z", "Attributes": "{}", **params}
    return WebhookReceived(flow_sid="FWflow", revision=1, route=ROUTE, channel="conversation", params=fields,
                           flow_event="", call_sid="", new_execution_sid=f"FN{n:032x}", received_at=NOW,
                           reply_id=f"c{n}", reply_partition=1)


def ask_flow(settings: Settings | None = None) -> Store:
    return Store(flow(
        widget("ask", "send-and-wait-for-reply", {"incomingMessage": "thanks", "timeout": None},
               body="Hi {{trigger.conversation.From}}, sales or support?", timeout="3600",
               service="{{trigger.message.InstanceSid}}", channel="{{trigger.message.ChannelSid}}"),
        widget("thanks", "send-message", {"sent": None, "failed": None},
               body="You said {{widgets.ask.inbound.Body}}", to="{{contact.channel.address}}",
               attributes='{"queue": "{{widgets.ask.inbound.Body}}"}'),
        trigger={"incomingConversationMessage": "ask"}), settings or Settings())


def only_request(outcome: Any) -> HttpRequest:
    (request,) = [c for c in outcome.commands if isinstance(c, HttpRequest)]
    return request


def message_resource(body: str) -> str:
    return orjson.dumps({"sid": "IM" + "9" * 32, "conversation_sid": CONVERSATION, "body": body, "author": "system",
                         "index": 7, "participant_sid": None, "attributes": "{}", "media": None}).decode()


def test_a_conversation_message_starts_an_execution_with_the_conversation_as_its_trigger() -> None:
    store = ask_flow()
    out = store.send(conversation_event("hello"), ROUTE)
    assert steps(out) == [("incomingConversationMessage", "Trigger", "ask")]
    context = record(out).context
    conversation = context["trigger"]["conversation"]
    assert (conversation["ConversationSid"], conversation["Body"], conversation["From"],
            conversation["ChannelSid"]) == (CONVERSATION, "hello", CUSTOMER, CONVERSATION)
    assert context["contact"]["channel"]["address"] == CUSTOMER
    assert context["flow"]["channel"]["address"] == "MG" + "2" * 32
    assert len(replies(out)) == 1  # the webhook is answered at once (Conversations ignores the body)


def test_send_and_wait_posts_into_the_conversation_and_the_next_participant_message_resumes_it() -> None:
    store = ask_flow()
    request = only_request(store.send(conversation_event("hello"), ROUTE))
    assert (request.method, request.url, request.purpose, request.twilio_auth) == (
        "POST", f"https://conversations.twilio.com/v1/Conversations/{CONVERSATION}/Messages", "message", True)
    assert request.form == [["Body", f"Hi {CUSTOMER}, sales or support?"]]
    store.send(http_result(request, 201, message_resource("Hi")), ROUTE)
    out = store.send(conversation_event("sales"), ROUTE)
    assert steps(out) == [("incomingMessage", "ask", "thanks")]
    request = only_request(out)
    assert request.form == [["Body", "You said sales"], ["Attributes", '{"queue": "sales"}']]
    out = store.send(http_result(request, 201, message_resource("You said sales")), ROUTE)
    assert steps(out) == [("sent", "thanks", "Ended")]
    widgets = record(out).context["widgets"]
    assert widgets["ask"]["inbound"]["Body"] == "sales" and widgets["ask"]["outbound"]["ConversationSid"] == CONVERSATION
    assert widgets["thanks"]["outbound"]["Sid"] == "IM" + "9" * 32


def test_the_flows_own_messages_and_other_conversation_events_are_ignored() -> None:
    store = ask_flow()
    request = only_request(store.send(conversation_event("hello"), ROUTE))
    store.send(http_result(request, 201, message_resource("Hi")), ROUTE)
    for event in (conversation_event("Hi", author="system"),
                  conversation_event("", event_type="onConversationStateUpdated")):
        out = store.send(event, ROUTE)
        assert out.records == [] and len(replies(out)) == 1
    sid = next(iter(store))
    assert store[sid].wait.widget == "ask"


def test_a_system_message_never_starts_an_execution() -> None:
    store = ask_flow()
    out = store.send(conversation_event("hello", author="system"), ROUTE)
    assert out.records == [] and not store


def test_the_conversations_api_base_is_configurable() -> None:
    store = ask_flow(Settings(conversations_api_base="http://127.0.0.1:9000/"))
    request = only_request(store.send(conversation_event("hello"), ROUTE))
    assert request.url == f"http://127.0.0.1:9000/v1/Conversations/{CONVERSATION}/Messages"


def test_send_to_flex_in_a_conversation_binds_the_interaction_to_it() -> None:
    store = Store(flow(widget("flex", "send-to-flex", {"callComplete": None}, workflow="WW1", channel="TC1"),
                       trigger={"incomingConversationMessage": "flex"}), Settings(flex_workspace_sid="WS1"))
    request = only_request(store.send(conversation_event("help"), ROUTE))
    channel = orjson.loads(dict(request.form)["Channel"])
    assert channel == {"type": "sms", "initiated_by": "customer", "properties": {"media_channel_sid": CONVERSATION}}



def test_the_conversation_is_found_while_a_subflow_runs() -> None:
    from services.processor.runner import new_state
    from services.processor.state import Frame
    from services.processor.widgets.conversations import conversation_sid

    state = new_state("FN1", "FWflow", 1, ROUTE, CUSTOMER, "MG1", "IM1", "conversation",
                      {"conversation": {"ConversationSid": CONVERSATION}}, {}, NOW)
    assert conversation_sid(state) == CONVERSATION
    state.enter_frame(Frame("sub", "FWsub", 1, "FT1", NOW), {"trigger": {"parent": {"parameters": {}}},
                                                             "flow": {}, "widgets": {}})
    assert state.context["trigger"] == {"parent": {"parameters": {}}} and conversation_sid(state) == CONVERSATION
