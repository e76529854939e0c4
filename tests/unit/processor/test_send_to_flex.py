"""Send to Flex (``send-to-flex``): a call is enqueued to a workflow with its task; a message becomes a Flex interaction."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.messages import HttpRequest
from shared.settings import Settings

from .harness import CHANNEL, CONTACT, Harness, flow_of, http_result
from .voice_helpers import WEBHOOK, XML, Store, call_event, flow, record, steps, twiml, widget

WORKFLOW = "WW" + "1" * 32
TASK_CHANNEL = "TC" + "2" * 32
WORKSPACE = "WS" + "3" * 32
EVENTS = {"callComplete": "done", "failedToEnqueue": "full", "callFailure": "broken"}
TAIL = [widget(name, "say-play", {}, say=name) for name in ("done", "full", "broken")]
ACTION = f'action="{WEBHOOK}?FlowEvent=callComplete" method="POST"'


def flex_store(**props: Any) -> Store:
    return Store(flow(widget("flex", "send-to-flex", EVENTS, **{"workflow": WORKFLOW, "channel": TASK_CHANNEL,
                                                                 **props}), *TAIL))


# -- calls -------------------------------------------------------------------------------------------

CALL_CASES = [
    ("the rendered attributes, priority and timeout become the Task",
     {"attributes": '{"type": "inbound", "name": "{{trigger.call.From}}"}', "priority": "10", "timeout": "300"},
     f'<Enqueue {ACTION} workflowSid="{WORKFLOW}"><Task priority="10" timeout="300">'
     '{"type":"inbound","name":"+15550001111"}</Task></Enqueue>'),
    ("without attributes the task still goes with empty attributes", {},
     f'<Enqueue {ACTION} workflowSid="{WORKFLOW}"><Task>{{}}</Task></Enqueue>'),
    ("hold music and its method", {"waitUrl": "https://hold.example.com/m.xml", "waitUrlMethod": "get"},
     f'<Enqueue {ACTION} waitUrl="https://hold.example.com/m.xml" waitUrlMethod="GET" workflowSid="{WORKFLOW}">'
     "<Task>{}</Task></Enqueue>"),
    ("hold music under the names Twilio's agent skill uses",
     {"hold_music_url": "https://hold.example.com/m.xml", "url_method": "get"},
     f'<Enqueue {ACTION} waitUrl="https://hold.example.com/m.xml" waitUrlMethod="GET" workflowSid="{WORKFLOW}">'
     "<Task>{}</Task></Enqueue>"),
    ("a priority that is not a whole number is left to TaskRouter's default", {"priority": "high", "timeout": ""},
     f'<Enqueue {ACTION} workflowSid="{WORKFLOW}"><Task>{{}}</Task></Enqueue>'),
]


@pytest.mark.parametrize("props,document", [pytest.param(p, d, id=i) for i, p, d in CALL_CASES])
def test_a_call_is_enqueued_to_the_workflow_with_its_task(props: dict[str, Any], document: str) -> None:
    store = flex_store(**props)
    out = store.send(call_event())
    assert twiml(out) == f"{XML}<Response>{document}</Response>"
    assert store[record(out).sid].wait.events == ("callComplete", "hangup")


@pytest.mark.parametrize("queue_result,transition", [
    ("bridged", "callComplete"), ("hangup", "callComplete"), ("leave", "callComplete"),
    ("redirected", "callComplete"), ("queue-full", "failedToEnqueue"), ("error", "callFailure"),
    ("system-error", "callFailure"), ("something-new", "callFailure"),
])
def test_the_enqueue_action_takes_the_transition_its_queue_result_names(queue_result: str, transition: str) -> None:
    store = flex_store()
    store.send(call_event())
    out = store.send(call_event({"QueueResult": queue_result, "QueueSid": "QU1", "QueueTime": "12"},
                                flow_event="callComplete"))
    assert steps(out) == [(transition, "flex", EVENTS[transition])]
    assert record(out).context["widgets"]["flex"]["QueueResult"] == queue_result
    assert f'<Say loop="1">{EVENTS[transition]}</Say>' in twiml(out)


def test_a_caller_who_hangs_up_before_the_action_takes_call_complete() -> None:
    store = flex_store()
    store.send(call_event())
    out = store.send(call_event({"CallStatus": "completed"}))
    assert steps(out) == [("callComplete", "flex", "done")]
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"


@pytest.mark.parametrize("props,reason", [
    ({"attributes": "not json"}, "JSON object"),
    ({"attributes": '["a list"]'}, "JSON object"),
    ({"workflow": "{{flow.variables.none}}"}, "workflow rendered empty"),
    ({"attributes": "{% if %}"}, "81018"),
], ids=["not-json", "not-an-object", "no-workflow", "template-error"])
def test_what_cannot_be_enqueued_takes_failed_to_enqueue_at_once(props: dict[str, Any], reason: str) -> None:
    store = flex_store(**props)
    out = store.send(call_event())
    assert steps(out)[1] == ("failedToEnqueue", "flex", "full")
    assert reason in record(out).context["widgets"]["flex"]["error"]
    assert "<Enqueue" not in twiml(out)


# -- messages: the Interactions API -------------------------------------------------------------------

SETTINGS = Settings(flex_workspace_sid=WORKSPACE, flex_api_base="https://flex-api.twilio.com")


def message_harness(settings: Settings = SETTINGS, **props: Any) -> Harness:
    return Harness(flow_of(
        widget("flex", "send-to-flex", {"callComplete": "after", "failedToEnqueue": "sorry"},
               **{"workflow": WORKFLOW, "channel": TASK_CHANNEL, **props}),
        widget("after", "set-variables", {"next": None}, variables=[{"key": "never", "value": "1"}]),
        widget("sorry", "set-variables", {"next": None}, variables=[{"key": "error", "value": "{{widgets.flex.error}}"}]),
    ), settings)


def interaction(h: Harness) -> HttpRequest:
    (request,) = h.requests()
    return request


def form(request: HttpRequest) -> dict[str, Any]:
    return {key: orjson.loads(value) for key, value in request.form}


def test_a_message_becomes_an_interaction_created_with_the_account_credentials() -> None:
    h = message_harness(attributes='{"selected_queue": "{{trigger.message.Body}}"}', priority="5", timeout="600")
    h.message("sales")
    request = interaction(h)
    assert (request.method, request.url, request.purpose, request.twilio_auth) == (
        "POST", "https://flex-api.twilio.com/v1/Interactions", "flex", True)
    assert form(request) == {
        "Channel": {"type": "sms", "initiated_by": "api",
                    "participants": [{"address": CONTACT, "proxy_address": CHANNEL}]},
        "Routing": {"properties": {
            "workspace_sid": WORKSPACE, "workflow_sid": WORKFLOW, "task_channel_sid": TASK_CHANNEL,
            "priority": 5, "timeout": 600,
            "attributes": {"channelType": "sms", "customerAddress": CONTACT, "from": CONTACT, "name": CONTACT,
                           "customerName": CONTACT, "selected_queue": "sales"}}},
    }


def test_a_message_in_a_conversation_binds_the_interaction_to_it_and_the_flow_attributes_win() -> None:
    h = message_harness(attributes='{"name": "VIP"}', channel="chat")
    h.message("hi", ConversationSid="CH" + "9" * 32, From="whatsapp:+15550001111")
    body = form(interaction(h))
    assert body["Channel"] == {"type": "whatsapp", "initiated_by": "customer",
                               "properties": {"media_channel_sid": "CH" + "9" * 32}}
    properties = body["Routing"]["properties"]
    assert properties["task_channel_unique_name"] == "chat" and "task_channel_sid" not in properties
    assert properties["attributes"]["name"] == "VIP" and properties["attributes"]["conversationSid"] == "CH" + "9" * 32


def test_studio_fills_in_the_attributes_a_flow_left_empty() -> None:
    h = message_harness(attributes='{"name": "{{trigger.message.ChannelAttributes.from}}", "channelSid": ""}')
    h.message("hi")
    attributes = form(interaction(h))["Routing"]["properties"]["attributes"]
    assert attributes["name"] == CONTACT and attributes["channelSid"] == ""


def test_once_flex_accepted_the_interaction_the_execution_ends() -> None:
    h = message_harness()
    h.message("hi")
    h.result(interaction(h), 201, orjson.dumps({"sid": "KD" + "4" * 32, "url": "https://flex-api/x",
                                                "channel": {"sid": "UO1"}}).decode())
    assert h.path()[-1] == ("callComplete", "flex", "Ended")
    assert h.record().status == "ended"
    assert h.context["widgets"]["flex"] == {"sid": "KD" + "4" * 32, "url": "https://flex-api/x",
                                            "channel": {"sid": "UO1"}}
    assert "never" not in h.context["flow"]["variables"]


@pytest.mark.parametrize("status,body,error", [
    (400, '{"code": 20001, "message": "Invalid workflow"}', "Twilio error 20001: Invalid workflow (HTTP 400)"),
    (None, "", "connection_error"),
])
def test_a_refused_interaction_takes_failed_to_enqueue(status: int | None, body: str, error: str) -> None:
    h = message_harness()
    h.message("hi")
    h.result(interaction(h), status, body)
    assert h.path()[-2:] == [("failedToEnqueue", "flex", "sorry"), ("next", "sorry", "Ended")]
    assert error in h.context["flow"]["variables"]["error"]


def test_without_a_workspace_nothing_is_sent_and_the_widget_fails_to_enqueue() -> None:
    h = message_harness(Settings())
    h.message("hi")
    assert h.requests() == []
    assert "SWITCHBOARD_FLEX_WORKSPACE_SID" in h.context["widgets"]["flex"]["error"]


def test_a_duplicate_result_after_the_end_changes_nothing() -> None:
    h = message_harness()
    h.message("hi")
    request = interaction(h)
    h.result(request, 201, '{"sid": "KD1"}')
    again = h.send(http_result(request, 201, '{"sid": "KD1"}'))
    assert again.records == []


def test_a_call_that_already_ended_is_not_enqueued() -> None:
    store = Store(flow(widget("log", "make-http-request", {"success": "flex"}, url="https://log.example.com/"),
                       widget("flex", "send-to-flex", EVENTS, workflow=WORKFLOW, channel=TASK_CHANNEL), *TAIL))
    out = store.send(call_event())
    sid = record(out).sid
    request = next(c for c in out.commands if isinstance(c, HttpRequest))
    store.send(call_event({"CallStatus": "completed"}))
    out = store.send(http_result(request, 200, "{}"))
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"
    assert sid not in store
