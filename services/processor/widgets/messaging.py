"""Send Message and Send & Wait For Reply, sent through the Twilio Messages REST API.

Both widgets render their properties (Liquid) and ask the http-worker to
``POST {twilio_api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with
the configured account's credentials (form fields ``To``, ``From`` — or
``MessagingServiceSid`` when ``from`` is an ``MG…`` sid — ``Body``, ``MediaUrl``,
``ContentSid``/``ContentVariables`` for content templates, ``ShortenUrls``).
The request id (and so the ``Idempotency-Key`` / ``I-Twilio-Idempotency-Token``)
is derived from the execution and step, so a retry after a crash is recognised.

``widgets.NAME.outbound`` is the Message resource Twilio returned, with Studio's
PascalCase names (``Sid``, ``Status``, ``Body``, ``To``, ``From``,
``ErrorCode``, ``ErrorMessage``, ``NumSegments``…).

Send Message (``send-message``)
    ``sent`` once Twilio accepted the message (2xx); ``failed`` when it refused
    (non-2xx, widgets.NAME.error holds Twilio's code and message), when no answer
    came, or when nothing could be sent (no ``to``, no body/media/content: 81011;
    a Liquid error: 81018).

Send & Wait For Reply (``send-and-wait-for-reply``)
    Sends like Send Message and waits (wait kind ``message``) for the contact's
    next message, at most ``timeout`` seconds (a string, default ``"3600"``),
    with a durable timer (id derived from the execution and the wait token).
    ``incomingMessage``: the reply's webhook parameters land in
    ``widgets.NAME.inbound`` (``Body``, ``From``, ``MessageSid``, ``MediaUrl0``…).
    ``timeout``: the timer fired first. ``deliveryFailure``: the message could not
    be sent (Twilio refused it, no answer, or the resource came back ``failed``/
    ``undelivered``). A reply that arrives before Twilio's answer to the send is
    kept and taken as soon as the send succeeded, so ``outbound`` is always set.
    Not yet covered: a delivery failure Twilio reports later through a status
    callback (the message was accepted, then not delivered).

In an execution started by a conversation's message both widgets post into
that conversation instead (``conversations.py``).
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.flow import State
from shared.liquid_render import TemplateError
from shared.messages import CancelTimer, Event, HttpResult, ScheduleTimer, TimerFired, WebhookReceived

from ..sprint import Next, Park, Sprint
from ..state import Wait
from . import conversations, twilio_api
from .http import FORM, request_command, request_wait, truthy

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "message_fields",
    "resume_send_and_wait",
    "resume_send_message",
    "send_and_wait_for_reply",
    "send_message",
]

DEFAULT_TIMEOUT_SECONDS = 3600
#: Message statuses that mean the message will never be delivered.
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})


class _Unsendable(ValueError):
    """Nothing can be sent; the message says why."""


def _twilio_error(result: HttpResult) -> str:
    return twilio_api.twilio_error(result, "the Messages API", "81011")


def message_fields(sprint: Sprint, props: Any, default_to: str) -> list[list[str]]:
    """The rendered form fields of the Messages API request; raises ``_Unsendable`` or ``TemplateError``."""
    to = sprint.render(props.get("to") or default_to).strip()
    sender = sprint.render(props.get("from") or "{{flow.channel.address}}").strip()
    body = sprint.render(props.get("body") or "")
    media = sprint.render(props.get("media_url") or "").strip()
    template = props.get("message_type") == "content_template"
    content_sid = sprint.render(props.get("content_sid") or "").strip() if template else ""
    if not to:
        raise _Unsendable("81011: the message has no recipient ('to' rendered empty)")
    if not sender:
        raise _Unsendable("81011: the message has no sender ('from' rendered empty)")
    if not (body.strip() or media or content_sid):
        raise _Unsendable("81011: the message has no body, media or content template")
    fields = [["To", to], ["MessagingServiceSid" if sender.startswith("MG") else "From", sender]]
    if content_sid:
        fields.append(["ContentSid", content_sid])
        variables = {}
        for item in props.get("content_variables") or []:
            if isinstance(item, dict) and str(item.get("key", "")):
                variables[sprint.render(item["key"])] = sprint.render(item.get("value", ""))
        if variables:
            fields.append(["ContentVariables", orjson.dumps(variables).decode()])
    elif body.strip():
        fields.append(["Body", body])
    if media:
        fields.extend(["MediaUrl", url.strip()] for url in media.split(",") if url.strip())
    if truthy(props.get("shorten_urls")):
        fields.append(["ShortenUrls", "true"])
    return fields


def _send(sprint: Sprint, widget: State, kind: str, events: tuple[str, ...] = ()) -> tuple[Wait, list[Any]]:
    """Render and build the send; raises ``_Unsendable`` or ``TemplateError``."""
    if conversation := conversations.conversation_sid(sprint.state):  # the contact talks in a conversation
        try:
            fields = conversations.message_fields(sprint, widget.properties)
        except ValueError as exc:
            raise _Unsendable(str(exc)) from None
        url = conversations.messages_url(sprint, conversation)
        command = request_command(sprint, "message", "POST", url, FORM, None, fields, [], True, False)
        return request_wait(sprint, widget, command, kind, events), [command]
    fields = message_fields(sprint, widget.properties, "{{contact.channel.address}}")
    wait, command = twilio_api.post(sprint, widget, "message", "Messages.json", fields, kind, events)
    return wait, [command]


# -- Send Message ------------------------------------------------------------------------------------


def send_message(sprint: Sprint, widget: State) -> Next | Park:
    try:
        wait, commands = _send(sprint, widget, "http")
    except TemplateError as exc:
        return Next("failed", {"error": f"81018: {exc}"})
    except _Unsendable as exc:
        return Next("failed", {"error": str(exc)})
    return Park(wait, tuple(commands))


def resume_send_message(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, HttpResult):
        return None
    if not event.ok:
        return Next("failed", {"error": _twilio_error(event)})
    outbound = twilio_api.resource_variables(event.body)
    if str(outbound.get("Status", "")).lower() in FAILED_STATUSES:
        return Next("failed", {"outbound": outbound, "error": f"the message is {outbound['Status']}"})
    return Next("sent", {"outbound": outbound})


# -- Send & Wait For Reply -----------------------------------------------------------------------------


def _timeout_seconds(sprint: Sprint, value: Any) -> float:
    text = sprint.render(value if value not in (None, "") else str(DEFAULT_TIMEOUT_SECONDS)).strip()
    try:
        seconds = float(text)
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS
    return seconds if seconds >= 0 else DEFAULT_TIMEOUT_SECONDS


def send_and_wait_for_reply(sprint: Sprint, widget: State) -> Next | Park:
    try:
        wait, commands = _send(sprint, widget, "message")
        timeout = _timeout_seconds(sprint, widget.properties.get("timeout"))
    except TemplateError as exc:
        return Next("deliveryFailure", {"error": f"81018: {exc}"})
    except _Unsendable as exc:
        return Next("deliveryFailure", {"error": str(exc)})
    state = sprint.state
    wait.timer_id = sprint.derived("TM", wait.token)
    commands.append(ScheduleTimer(wait.timer_id, state.sid, state.route, wait.token, sprint.env.now + timeout))
    return Park(wait, tuple(commands))


def _leave(sprint: Sprint, wait: Wait, event: str, outputs: dict[str, Any]) -> Next:
    if wait.timer_id:
        sprint.commands.append(CancelTimer(wait.timer_id))
    return Next(event, outputs)


def resume_send_and_wait(sprint: Sprint, widget: State, event: Event) -> Next | Park | None:
    wait = sprint.state.wait
    if wait is None:
        return None
    data = dict(wait.data)
    if isinstance(event, HttpResult):
        if data.get("sent"):
            return None  # a duplicate result
        if not event.ok:
            return _leave(sprint, wait, "deliveryFailure", {"error": _twilio_error(event)})
        outbound = twilio_api.resource_variables(event.body)
        if str(outbound.get("Status", "")).lower() in FAILED_STATUSES:
            return _leave(sprint, wait, "deliveryFailure",
                          {"outbound": outbound, "error": f"the message is {outbound['Status']}"})
        if isinstance(data.get("early_reply"), dict):
            return _leave(sprint, wait, "incomingMessage", {"outbound": outbound, "inbound": data["early_reply"]})
        data.update(sent=True, outbound=outbound)
        return Park(_with(wait, data))
    if isinstance(event, WebhookReceived):
        inbound = dict(event.params) if isinstance(event.params, dict) else {}
        if not data.get("sent"):
            if "early_reply" not in data:  # the first reply counts, as it would once the send is confirmed
                data["early_reply"] = inbound
            return Park(_with(wait, data))
        return _leave(sprint, wait, "incomingMessage", {"outbound": data.get("outbound", {}), "inbound": inbound})
    if isinstance(event, TimerFired) and event.timer_id == wait.timer_id:
        outputs: dict[str, Any] = {"outbound": data["outbound"]} if data.get("sent") else {}
        return _leave(sprint, wait, "timeout", outputs)
    return None


def _with(wait: Wait, data: dict[str, Any]) -> Wait:
    return Wait(wait.widget, wait.kind, wait.token, wait.events, wait.timer_id, wait.twiml, wait.started_at, data)
