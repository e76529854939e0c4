"""Connect Virtual Agent (v1 and v2): the ``<Connect><VirtualAgent>`` answered, and what the action's result takes."""

from __future__ import annotations

from typing import Any

import pytest

from .voice_helpers import WEBHOOK, XML, Store, call_event, flow, message_event, record, steps, twiml, widget

V2_EVENTS = ("completed", "live-agent-handoff", "hangup", "failed", "paused", "timeout")


def v1_store(**props: Any) -> Store:
    return Store(flow(widget("agent", "connect-virtual-agent", {"return": "back", "hangup": "gone"}, **props),
                      widget("back", "say-play", {}, say="back"), widget("gone", "say-play", {}, say="gone")))


def v2_store(**props: Any) -> Store:
    return Store(flow(widget("agent", "connect-virtual-agent-v2", {e: f"on_{e}" for e in V2_EVENTS}, **props),
                      *(widget(f"on_{e}", "say-play", {}, say=e) for e in V2_EVENTS)))


TWIML_CASES = [
    ("v1 with every property", v1_store,
     {"connector": "dialogflow-{{trigger.call.To}}", "language": "en-US", "sentiment_analysis": "true",
      "status_callback": "https://cb.example.com/va"},
     f'<Connect action="{WEBHOOK}?FlowEvent=return" method="POST"><VirtualAgent '
     'connectorName="dialogflow-+15559990000" language="en-US" sentimentAnalysis="true" '
     'statusCallback="https://cb.example.com/va" /></Connect>'),
    ("v2 with configurations and parameters", v2_store,
     {"connector_name": "cx", "channel": "voice", "status_callback_method": "get",
      "status_callback": "https://cb.example.com/va",
      "configurations": [{"key": "welcomeIntent", "value": "hi"}],
      "parameters": [{"key": "customer", "value": "{{trigger.call.From}}"}]},
     f'<Connect action="{WEBHOOK}?FlowEvent=completed" method="POST"><VirtualAgent connectorName="cx" '
     'statusCallback="https://cb.example.com/va" statusCallbackMethod="GET"><Config name="welcomeIntent" value="hi" />'
     '<Parameter name="customer" value="+15550001111" /></VirtualAgent></Connect>'),
]


@pytest.mark.parametrize("make,props,document", [pytest.param(m, p, d, id=i) for i, m, p, d in TWIML_CASES])
def test_the_call_is_connected_to_the_virtual_agent_with_an_action_back_to_the_flow(make: Any, props: dict[str, Any],
                                                                                   document: str) -> None:
    store = make(**props)
    assert twiml(store.send(call_event())) == f"{XML}<Response>{document}</Response>"


@pytest.mark.parametrize("params,transition", [
    ({"VirtualAgentStatus": "completed"}, "return"),
    ({"VirtualAgentStatus": "live-agent-handoff"}, "return"),
    ({"VirtualAgentStatus": "completed", "CallStatus": "completed"}, "hangup"),
])
def test_v1_returns_or_hangs_up(params: dict[str, str], transition: str) -> None:
    store = v1_store(connector="cx")
    store.send(call_event())
    out = store.send(call_event(params | {"VirtualAgentProvider": "DialogflowCX"}, flow_event="return"))
    assert steps(out) == [(transition, "agent", "back" if transition == "return" else "gone")]
    assert record(out).context["widgets"]["agent"]["VirtualAgentProvider"] == "DialogflowCX"


@pytest.mark.parametrize("status,transition", [
    ("completed", "completed"), ("live-agent-handoff", "live-agent-handoff"), ("hangup", "hangup"),
    ("failed", "failed"), ("paused", "paused"), ("timeout", "timeout"), ("", "completed"), ("exploded", "failed"),
], ids=lambda v: v or "missing")
def test_v2_takes_the_transition_the_virtual_agent_status_names(status: str, transition: str) -> None:
    store = v2_store(connector_name="cx")
    store.send(call_event())
    params = {"VirtualAgentProviderData": '{"AgentHandoffParameters": {"queue": "sales"}}'}
    out = store.send(call_event(params | ({"VirtualAgentStatus": status} if status else {}), flow_event="completed"))
    assert steps(out) == [(transition, "agent", f"on_{transition}")]
    data = record(out).context["widgets"]["agent"]["VirtualAgentProviderData"]
    assert data == {"AgentHandoffParameters": {"queue": "sales"}}


def test_a_caller_who_hangs_up_while_talking_to_the_agent_takes_hangup() -> None:
    for store in (v1_store(connector="cx"), v2_store(connector_name="cx")):
        store.send(call_event())
        out = store.send(call_event({"CallStatus": "completed"}))
        assert steps(out)[0][:2] == ("hangup", "agent")
        assert record(out).status == "ended"


def test_v2_on_conversations_or_without_a_call_takes_failed_at_once() -> None:
    store = v2_store(connector_name="cx", channel="conversations")
    out = store.send(call_event())
    assert steps(out)[1] == ("failed", "agent", "on_failed")
    store = Store(flow(widget("agent", "connect-virtual-agent-v2", {"failed": None}, connector_name="cx"),
                       trigger={"incomingMessage": "agent"}))
    out = store.send(message_event())
    assert steps(out)[1] == ("failed", "agent", "Ended")
    assert "needs a live call" in record(out).context["widgets"]["agent"]["error"]
