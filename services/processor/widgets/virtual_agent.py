"""Connect Virtual Agent (``connect-virtual-agent``, ``-v2``): hand the live call to a Dialogflow virtual agent.

::

    <Response><Connect action="WEBHOOK?FlowEvent=<action event>" method="POST">
        <VirtualAgent connectorName=".." language="en-US" sentimentAnalysis="true"
                      statusCallback=".." statusCallbackMethod="POST">
            <Config name=".." value=".."/>…  <Parameter name=".." value=".."/>…
        </VirtualAgent></Connect></Response>

Properties (Liquid): ``connector`` (v1) or ``connector_name`` (v2; either is
read), ``language``, ``sentiment_analysis``, ``status_callback``,
``status_callback_method``; v2 also ``configurations`` (``{key, value}`` pairs →
``<Config>``) and ``parameters`` (→ ``<Parameter>``, passed to the agent).
Attributes only when they render non-empty.

Twilio posts the ``<Connect>`` action when the agent hands the call back; its
parameters (``VirtualAgentProvider``, ``VirtualAgentStatus``,
``VirtualAgentProviderData`` — parsed into an object when it is a JSON object —
``VirtualAgentError``, ``VirtualAgentErrorCode``, ``CallSid``…) land in
``widgets.NAME``.

* **v1** → ``return`` (the action's ``FlowEvent``), or ``hangup`` when the
  caller hung up (``CallStatus`` final, or the status callback came first).
* **v2** → the transition ``VirtualAgentStatus`` names: ``completed``,
  ``live-agent-handoff``, ``hangup``, ``failed``, ``paused``, ``timeout``; an
  action without a status → ``completed``, an unknown status → ``failed``; the
  caller hanging up → ``hangup``. A v2 widget whose ``channel`` is
  ``conversations``, or in an execution without a call, takes ``failed`` at once
  (``error`` says why): Dialogflow on Conversations is not built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twilio.twiml.voice_response import Connect, VirtualAgent, VoiceResponse

from shared.flow import State
from shared.messages import Event, WebhookReceived

from ..sprint import Next, Park, Sprint
from .http import parse_json_object
from .voice import FINAL_CALL_STATUSES, flow_event_url, needs_call, park_twiml

__all__ = ["V2_EVENTS", "connect_virtual_agent", "resume_connect_virtual_agent"]

V1, V2 = "connect-virtual-agent", "connect-virtual-agent-v2"
V2_EVENTS = frozenset({"completed", "live-agent-handoff", "hangup", "failed", "paused", "timeout"})
#: The ``FlowEvent`` of the ``<Connect>`` action per widget version.
ACTION_EVENT = {V1: "return", V2: "completed"}


def _text(sprint: Sprint, props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    return sprint.render(value).strip() if value not in (None, "") else ""


def _agent(sprint: Sprint, props: Mapping[str, Any]) -> VirtualAgent:
    attrs = {
        "connector_name": _text(sprint, props, "connector_name") or _text(sprint, props, "connector"),
        "language": _text(sprint, props, "language"),
        "sentiment_analysis": _text(sprint, props, "sentiment_analysis").lower(),
        "status_callback": _text(sprint, props, "status_callback"),
        "status_callback_method": _text(sprint, props, "status_callback_method").upper(),
    }
    agent = VirtualAgent(**{k: v for k, v in attrs.items() if v})
    for key, add in (("configurations", agent.config), ("parameters", agent.parameter)):
        for item in props.get(key) or []:
            if isinstance(item, dict) and str(item.get("key", "")):
                add(name=sprint.render(item["key"]), value=sprint.render(item.get("value", "")))
    return agent


def connect_virtual_agent(sprint: Sprint, widget: State) -> Next | Park:
    props = widget.properties
    if widget.type == V2:
        if _text(sprint, props, "channel").lower() == "conversations":
            return Next("failed", {"error": "Connect Virtual Agent on Conversations is not supported by Switchboard; "
                                            "nothing was connected"})
        if not sprint.state.call_sid:
            return Next("failed", {"error": f"{V2} needs a live call; this execution ({sprint.state.channel}) has "
                                            "none, so nothing was connected"})
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    event = ACTION_EVENT.get(widget.type, "return")
    connect = Connect(action=flow_event_url(sprint, event), method="POST")
    connect.append(_agent(sprint, props))
    response = VoiceResponse()
    response.append(connect)
    return park_twiml(sprint, widget, (event, "hangup"), response)


def _outputs(event: WebhookReceived) -> dict[str, Any]:
    params = event.params if isinstance(event.params, dict) else {}
    outputs = {k: v for k, v in params.items() if k != "FlowEvent"}
    data = outputs.get("VirtualAgentProviderData")
    if isinstance(data, str) and (parsed := parse_json_object(data)) is not None:
        outputs["VirtualAgentProviderData"] = parsed
    return outputs


def resume_connect_virtual_agent(sprint: Sprint, widget: State, event: Event) -> Next | None:
    action = ACTION_EVENT.get(widget.type, "return")
    if not isinstance(event, WebhookReceived) or event.flow_event not in (action, "hangup"):
        return None
    outputs = _outputs(event)
    hung_up = event.flow_event == "hangup" or str(outputs.get("CallStatus", "")) in FINAL_CALL_STATUSES
    if widget.type != V2:
        return Next("hangup" if hung_up else "return", outputs)
    status = str(outputs.get("VirtualAgentStatus", "")).strip().lower()
    if hung_up and status in ("", "completed"):
        return Next("hangup", outputs)
    if not status:
        return Next("completed", outputs)
    return Next(status if status in V2_EVENTS else "failed", outputs)
