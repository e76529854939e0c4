"""Which execution a Twilio webhook belongs to, and what it does there.

Finding the execution (everything of one contact in one flow shares a route):

* a **call** request belongs to the execution its ``CallSid`` started; a new
  ``CallSid`` without ``FlowEvent`` starts an execution (``incomingCall``). With
  ``flags.allow_concurrent_calls`` (Studio's default) every call gets its own
  execution; without it a call from a contact who has an active execution is
  refused with ``<Reject reason="busy"/>``.
* a **message** request belongs to the contact's active execution (with
  ``allow_concurrent_calls`` the contact's call executions are left out, so a
  text never lands in a call); with none, it starts one (``incomingMessage``).
  At most one message/REST execution per contact is ever active.

What the request does there:

* ``FlowEvent=<event>`` that the parked widget accepts (or, without
  ``FlowEvent``, a message while Send & Wait For Reply waits — wait kind
  ``message``) resumes it; the webhook is answered with the next TwiML.
* ``FlowEvent=keepalive`` (the ingress's own ``<Redirect>`` when the processor
  did not answer within the budget) takes over the waiting webhook: it is
  answered with the TwiML of the widget the execution is parked on, or — while
  an HTTP widget still runs — as soon as the execution reaches TwiML. Any other
  request for a call's execution that is not accepted (late, duplicate, or a
  replay of one already applied) is answered the same way, so the caller hears
  what the flow is doing now; once the flow has lost the call (the caller hung
  up or a TwiML Redirect timed out) it gets an empty ``<Response/>``.
  A message that is not accepted is ignored (empty ``<Response/>``).
* A status callback (``CallStatus`` completed, busy, failed, no-answer,
  canceled, without ``FlowEvent``) tells that the call is over: a widget that
  has a ``hangup`` transition (Connect Call To, Record Voicemail) takes it; an
  execution parked on any other TwiML widget ends (``call_ended``); one that
  is running an HTTP widget or waits for a message or timer goes on, and ends
  when it next reaches a TwiML widget.
* A **conversation** message (a Conversations ``onMessageAdded`` webhook; the
  route is the conversation's) belongs to the conversation's active execution,
  or starts one (``incomingConversationMessage``, ``trigger.conversation.*``,
  contact = ``Author``); it resumes a Send & Wait For Reply like a text does.
  Other Conversations events, and messages whose ``Author`` is ``system`` (what
  the flow itself posts through the API), are ignored.
* A message status callback (``MessageStatus``, or ``SmsStatus`` other than
  ``received``: a delivery report for a message the flow sent) is ignored — it
  neither resumes a Send & Wait For Reply nor starts an execution.
* Requests for no active execution (``FlowEvent`` or status callbacks for an
  ended execution, a replay of a start already done) get an empty ``<Response/>``.

A call placed by Make Outgoing Call (``widgets/outbound_call.py``) is an
``outbound-api`` call: its contact is ``To`` (the ingress keys it so), and its
``Url`` and ``StatusCallback`` name the execution and the wait in the query
(``FlowExecutionSid``, ``FlowWait``), so they find the execution before its
``CallSid`` is known. The ``Url`` request (``FlowEvent=answered``) or a final
status callback for the wait the execution is in resumes it; the answered
request registers the ``CallSid`` on the route, after which every request of
that call (its ``FlowEvent`` requests, keep-alives, the final status callback)
is handled as for an incoming call. A request naming a wait the execution has
left (a repeated or late callback, an earlier call) changes nothing and gets an
empty ``<Response/>`` (a stale ``Url`` request is so hung up).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from shared.flow import FlowDefinition
from shared.messages import Reply, WebhookReceived

from .runner import Outcome, begin, finish, new_state, resume
from .sprint import EMPTY_TWIML, Env, Sprint
from .state import ExecutionState, RouteState
from .widgets import conversations, outbound_call

__all__ = ["FINAL_CALL_STATUSES", "KEEPALIVE", "route_webhook"]

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
KEEPALIVE = "keepalive"
APPLIED_WEBHOOKS_KEPT = 8  # a crash replays at most ~1 s of events (the commit interval)


def _answer(event: WebhookReceived, outcome: Outcome, twiml: str = EMPTY_TWIML, status: str = "ok") -> Outcome:
    if event.reply_id:
        outcome.commands.append(Reply(event.reply_id, event.reply_partition, status, twiml=twiml))
    return outcome


def _busy() -> str:
    response = VoiceResponse()
    response.reject(reason="busy")
    return str(response)


def _params(event: WebhookReceived) -> dict[str, Any]:
    return event.params if isinstance(event.params, dict) else {}


def _is_status_callback(event: WebhookReceived) -> bool:
    return (event.channel == "voice" and not event.flow_event
            and str(_params(event).get("CallStatus", "")) in FINAL_CALL_STATUSES)


def _is_message_status(event: WebhookReceived) -> bool:
    params = _params(event)
    if event.channel == "conversation":  # only a participant's new message is for the flow
        return not event.flow_event and (str(params.get("EventType", "")) != "onMessageAdded"
                                         or str(params.get("Author", "")) == conversations.OWN_AUTHOR)
    status = str(params.get("SmsStatus", "received") or "received")
    return event.channel == "message" and not event.flow_event and ("MessageStatus" in params or status != "received")


def _target(event: WebhookReceived, route: RouteState, flow: FlowDefinition | None) -> str | None:
    if event.channel == "voice":
        if event.call_sid and event.call_sid in route.calls:
            return route.calls[event.call_sid]
        placed = outbound_call.execution_of(event.params)  # a call a Make Outgoing Call widget placed
        return placed if placed in route.active else None
    concurrent_calls = flow is None or flow.allow_concurrent_calls
    call_executions = set(route.calls.values()) if concurrent_calls else set()
    candidates = [sid for sid in route.active if sid not in call_executions]
    return candidates[0] if candidates else None


def route_webhook(event: WebhookReceived, route: RouteState, executions: Mapping[str, ExecutionState],
                  env: Env) -> Outcome:
    outcome = Outcome(route)
    if _is_message_status(event):
        return _answer(event, outcome)
    flow = env.flows(event.flow_sid, event.revision)
    sid = _target(event, route, flow)
    if sid is None and event.new_execution_sid in route.recent:
        return _answer(event, outcome)  # replay of a webhook whose execution already ended
    if sid is None and event.new_execution_sid in route.active:
        sid = event.new_execution_sid  # replay of the start of an execution still active
    stored = executions.get(sid) if sid else None
    if stored is None:
        return _start(event, route, flow, env, outcome)
    state = stored.copy()
    execution_flow = env.flows(state.flow_sid, state.revision)
    if execution_flow is None:
        return _answer(event, outcome)
    sprint = Sprint(state, route, execution_flow, env)
    if event.new_execution_sid in state.webhooks:
        return _reanswer(event, sprint, outcome)  # a replay of a webhook already applied
    placed = outbound_call.placed_call(state, event.params, event.call_sid)
    if placed == outbound_call.WAITING:
        return _placed_call(event, sprint, execution_flow, outcome)
    if placed == outbound_call.STALE:
        return _answer(event, outcome)
    if placed:  # the live call's own request (its final status callback): without the routing parameters
        event = dataclasses.replace(event, params=outbound_call.call_parameters(event.params))
    if _is_status_callback(event):
        return _call_over(event, sprint, execution_flow, outcome)
    wait = state.wait
    accepted = wait is not None and event.flow_event != KEEPALIVE and (
        event.flow_event in wait.events
        or (not event.flow_event and event.channel in ("message", "conversation") and wait.kind == "message"))
    if not accepted:
        return _reanswer(event, sprint, outcome)
    _applied(state, event)
    if str(_params(event).get("CallStatus", "")) in FINAL_CALL_STATUSES and state.call_sid:
        state.call_released = True  # e.g. the <Dial>/<Record> action after the caller hung up
    _take_reply(state, event)
    resume(sprint, execution_flow, event)
    return finish(sprint, outcome)


def _take_reply(state: ExecutionState, event: WebhookReceived) -> None:
    """This request now waits for the execution's next TwiML (an earlier one gave up or was answered)."""
    if event.reply_id:
        state.reply_id, state.reply_partition = event.reply_id, event.reply_partition


def _applied(state: ExecutionState, event: WebhookReceived) -> None:
    state.webhooks.append(event.new_execution_sid)
    del state.webhooks[:-APPLIED_WEBHOOKS_KEPT]


def _reanswer(event: WebhookReceived, sprint: Sprint, outcome: Outcome) -> Outcome:
    """Answer without moving the execution: a call hears where the flow is; anything else gets nothing."""
    state = sprint.state
    if event.channel != "voice" or not state.call_sid or state.call_released:
        return _answer(event, outcome)
    wait = state.wait
    if wait is not None and wait.kind == "http":
        _take_reply(state, event)  # answered when the HTTP widget is done and the flow reaches TwiML
        return finish(sprint, outcome)
    return _answer(event, outcome, wait.twiml if wait is not None and wait.twiml else EMPTY_TWIML)


def _call_over(event: WebhookReceived, sprint: Sprint, flow: FlowDefinition, outcome: Outcome) -> Outcome:
    state = sprint.state
    _applied(state, event)
    state.call_released = True
    wait = state.wait
    if wait is not None and "hangup" in wait.events:
        resume(sprint, flow, dataclasses.replace(event, flow_event="hangup"))
        wait = state.wait if state.status == "active" else None
    if state.status == "active" and (wait is None or wait.kind == "webhook"):
        sprint.end("call_ended")  # parked on TwiML nobody will follow any more
    finish(sprint, outcome)
    return _answer(event, outcome)


def _placed_call(event: WebhookReceived, sprint: Sprint, flow: FlowDefinition, outcome: Outcome) -> Outcome:
    """The callee answered the call the execution is placing (``Url``), or its final status came first."""
    state = sprint.state
    answered = event.flow_event == outbound_call.ANSWERED
    if not (answered or _is_status_callback(event)):
        return _answer(event, outcome)  # e.g. an intermediate status: the wait goes on
    _applied(state, event)
    if answered:
        _take_reply(state, event)  # the flow's next TwiML answers the callee's first request
    resume(sprint, flow, event)
    finish(sprint, outcome)
    return outcome if answered else _answer(event, outcome)


def _start(event: WebhookReceived, route: RouteState, flow: FlowDefinition | None, env: Env,
           outcome: Outcome) -> Outcome:
    params = _params(event)
    if event.flow_event or _is_status_callback(event) or flow is None:
        return _answer(event, outcome)  # nothing to resume or end
    voice = event.channel == "voice"
    if voice and route.active and not flow.allow_concurrent_calls:
        return _answer(event, outcome, _busy(), status="conflict")
    outbound = str(params.get("Direction", "inbound")).startswith("outbound")
    contact = str(params.get("To" if outbound else "From", ""))
    channel_address = str(params.get("From" if outbound else "To", ""))
    trigger = {"call": dict(params)} if voice else {"message": dict(params)}
    trigger_event = "incomingCall" if voice else "incomingMessage"
    if event.channel == "conversation":
        trigger = {"conversation": conversations.trigger_data(params)}
        contact, channel_address = conversations.addresses(params)
        trigger_event = conversations.TRIGGER_EVENT
    initiated_by = event.call_sid or str(params.get("MessageSid", "") or params.get("SmsSid", ""))
    state = new_state(event.new_execution_sid, event.flow_sid, event.revision, event.route, contact,
                      channel_address, initiated_by, event.channel, trigger, {}, event.received_at)
    state.call_sid = event.call_sid if voice else ""
    state.webhooks.append(event.new_execution_sid)
    _take_reply(state, event)
    route.add(state.sid, state.call_sid)
    sprint = Sprint(state, route, flow, env)
    begin(sprint, flow, trigger_event)
    return finish(sprint, outcome)
