"""Send to Flex (``send-to-flex``): hand a call to a TaskRouter workflow, or a message/conversation to Flex.

Properties (Liquid everywhere): ``workflow`` (``WW…``, required), ``channel``
(the Task Channel, ``TC…``, required), ``attributes`` (a JSON object as text),
``priority`` and ``timeout`` (whole seconds, strings in Studio's model),
``waitUrl`` and ``waitUrlMethod`` (calls only; also read as ``hold_music_url`` and
``url_method``). ``attributes`` must render to a
JSON object (empty means ``{}``), otherwise ``failedToEnqueue`` at once with
``widgets.NAME.error`` and nothing sent.

**A call** is enqueued with TwiML, exactly like Enqueue Call with a workflow::

    <Response><Enqueue action="WEBHOOK?FlowEvent=callComplete" method="POST" workflowSid="WW…"
                       waitUrl=".." waitUrlMethod="GET">
        <Task priority="N" timeout="N">{attributes}</Task></Enqueue></Response>

  and the ``<Enqueue>`` action's ``QueueResult`` picks the transition as for
  Enqueue Call (``voice.QUEUE_RESULTS``): ``bridged``, ``hangup``, ``leave``,
  ``redirected``… → ``callComplete``; ``queue-full`` → ``failedToEnqueue``;
  ``error``, ``system-error``, anything else → ``callFailure``; a final status
  callback before the action → ``callComplete``. ``channel`` is not part of
  ``<Enqueue>`` (TaskRouter puts a call on its ``voice`` channel).

**A message, a conversation or a REST-started execution** becomes a Flex
interaction through Flex's Interactions API, performed by the http-worker with
the account's credentials (request id and idempotency key from execution and
step)::

    POST {SWITCHBOARD_FLEX_API_BASE}/v1/Interactions
      Channel={"type": "sms"|"whatsapp"|"messenger"|"chat", "initiated_by": "customer",
               "properties": {"media_channel_sid": "CH…"}}             (the conversation / chat channel)
          or  {"type": "sms", "initiated_by": "api",
               "participants": [{"address": contact, "proxy_address": flow address}]}   (no conversation yet)
      Routing={"properties": {"workspace_sid": SWITCHBOARD_FLEX_WORKSPACE_SID, "workflow_sid": "WW…",
                              "task_channel_sid": "TC…", "attributes": {…}, "priority": N, "timeout": N}}

  The task attributes are the rendered ``attributes`` plus, where the flow did
  not set them (or they rendered empty), the ones Studio adds for messaging (``channelType``,
  ``customerAddress``, ``from``, ``name``, ``customerName``: the contact), and
  ``conversationSid`` in a conversation. Twilio accepted (2xx): Flex owns the
  contact now and **the execution ends** — the step is ``callComplete`` to
  ``Ended`` whatever the transition says, ``widgets.NAME`` is the Interaction
  resource as Twilio returned it (``sid`` ``KD…``, ``channel``, ``routing``, ``url``). Refused (non-2xx), no answer, or no
  workspace configured: ``failedToEnqueue`` with ``error`` (the flow can apologise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from twilio.twiml.voice_response import VoiceResponse

from shared.flow import State
from shared.liquid_render import TemplateError
from shared.messages import Event, HttpResult

from ..sprint import Next, Park, Sprint
from . import conversations, twilio_api
from .http import FORM, parse_json_object, request_command, request_wait
from .voice import flow_event_url, needs_call, park_twiml, resume_enqueue_call

__all__ = ["interaction_channel", "resume_send_to_flex", "send_to_flex"]

API = "the Flex Interactions API"
WAIT_KIND_INTERACTION = "http"  # the flow waits on the Interactions API like on any HTTP widget
_CHANNEL_PREFIXES = (("whatsapp:", "whatsapp"), ("messenger:", "messenger"))


class _Unroutable(ValueError):
    """No task can be created; the message says why."""


def _text(sprint: Sprint, props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    return sprint.render(value).strip() if value not in (None, "") else ""


def _whole(sprint: Sprint, props: Mapping[str, Any], key: str) -> int | None:
    text = _text(sprint, props, key)
    return int(text) if text.isdigit() else None


def _attributes(sprint: Sprint, props: Mapping[str, Any]) -> dict[str, Any]:
    text = _text(sprint, props, "attributes")
    if not text:
        return {}
    parsed = parse_json_object(text)
    if parsed is None:
        raise _Unroutable(f"attributes must render to a JSON object, got {text[:200]!r}; nothing was sent")
    return parsed


def send_to_flex(sprint: Sprint, widget: State) -> Next | Park:
    props = widget.properties
    try:
        workflow = _text(sprint, props, "workflow")
        if not workflow:
            raise _Unroutable("workflow rendered empty; nothing was sent")
        attributes = _attributes(sprint, props)
        if sprint.state.call_sid:
            return _enqueue(sprint, widget, workflow, attributes)
        return _interaction(sprint, widget, workflow, attributes)
    except TemplateError as exc:
        return Next("failedToEnqueue", {"error": f"81018: {exc}"})
    except _Unroutable as exc:
        return Next("failedToEnqueue", {"error": str(exc)})


# -- calls -----------------------------------------------------------------------------------------


def _enqueue(sprint: Sprint, widget: State, workflow: str, attributes: dict[str, Any]) -> Next | Park:
    stopped = needs_call(sprint, widget)  # the caller may be gone already (hung up during an HTTP widget)
    if stopped:
        return stopped
    props = widget.properties
    # Console exports write waitUrl/waitUrlMethod; Twilio's agent skill names them hold_music_url/url_method.
    wait_url = _text(sprint, props, "waitUrl") or _text(sprint, props, "hold_music_url")
    method = (_text(sprint, props, "waitUrlMethod") or _text(sprint, props, "url_method")).upper() if wait_url else ""
    response = VoiceResponse()
    enqueue = response.enqueue(None, **{k: v for k, v in {
        "action": flow_event_url(sprint, "callComplete"), "method": "POST", "wait_url": wait_url,
        "wait_url_method": method, "workflow_sid": workflow}.items() if v})
    task = {k: v for k, v in {"priority": _whole(sprint, props, "priority"),
                              "timeout": _whole(sprint, props, "timeout")}.items() if v is not None}
    enqueue.task(orjson.dumps(attributes).decode(), **task)
    return park_twiml(sprint, widget, ("callComplete", "hangup"), response)


# -- messages, conversations, REST ---------------------------------------------------------------------


def _channel_type(address: str) -> str:
    for prefix, kind in _CHANNEL_PREFIXES:
        if address.lower().startswith(prefix):
            return kind
    return "sms" if address.startswith("+") else "chat"


def _media_channel(trigger: Mapping[str, Any]) -> str:
    """The conversation (or legacy chat channel) the contact is talking in, if any."""
    for source in ("conversation", "message"):
        data = trigger.get(source)
        if isinstance(data, dict):
            for key in ("ConversationSid", "ChannelSid"):
                if str(data.get(key) or "").strip():
                    return str(data[key]).strip()
    return ""


def interaction_channel(sprint: Sprint) -> dict[str, Any]:
    """The Interactions API ``Channel``: bind to the contact's conversation, or open one with them."""
    state = sprint.state
    kind = _channel_type(state.contact_address)
    # The conversation is found through the execution's own trigger also while a subflow runs.
    media = conversations.conversation_sid(state) or _media_channel(state.context.get("trigger") or {})
    if media:
        return {"type": kind, "initiated_by": "customer", "properties": {"media_channel_sid": media}}
    return {"type": kind, "initiated_by": "api",
            "participants": [{"address": state.contact_address, "proxy_address": state.channel_address}]}


def _interaction(sprint: Sprint, widget: State, workflow: str, attributes: dict[str, Any]) -> Next | Park:
    settings, state = sprint.env.settings, sprint.state
    if not settings.flex_workspace_sid:
        raise _Unroutable("no TaskRouter workspace is configured (SWITCHBOARD_FLEX_WORKSPACE_SID); nothing was sent")
    channel = interaction_channel(sprint)
    contact = state.contact_address
    defaults: dict[str, Any] = {"channelType": channel["type"], "customerAddress": contact, "from": contact,
                                "name": contact, "customerName": contact}
    media = channel.get("properties", {}).get("media_channel_sid", "")
    if str(media).startswith("CH"):
        defaults["conversationSid"] = media
    merged = dict(attributes)
    for key, value in defaults.items():  # a flow's own value wins, unless it rendered empty (e.g. legacy
        if merged.get(key) in (None, ""):  # ChannelAttributes in Flex's default messaging flow, absent for SMS)
            merged[key] = value
    properties: dict[str, Any] = {"workspace_sid": settings.flex_workspace_sid, "workflow_sid": workflow,
                                  "attributes": merged}
    if task_channel := _text(sprint, widget.properties, "channel"):
        properties["task_channel_sid" if task_channel.startswith("TC") else "task_channel_unique_name"] = task_channel
    for key in ("priority", "timeout"):
        if (value := _whole(sprint, widget.properties, key)) is not None:
            properties[key] = value
    fields = [["Channel", orjson.dumps(channel).decode()],
              ["Routing", orjson.dumps({"properties": properties}).decode()]]
    url = f"{settings.flex_api_base.rstrip('/')}/v1/Interactions"
    command = request_command(sprint, "flex", "POST", url, FORM, None, fields, [], True, False)
    return Park(request_wait(sprint, widget, command, WAIT_KIND_INTERACTION), (command,))


def resume_send_to_flex(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, HttpResult):
        return resume_enqueue_call(sprint, widget, event)
    if not event.ok:
        return Next("failedToEnqueue", {"error": twilio_api.twilio_error(event, API)})
    # Flex owns the contact now: Studio's execution ends here, whatever the transition says.
    return Next("callComplete", parse_json_object(event.body) or {}, explicit=True, target=None)
