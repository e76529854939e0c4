"""Which execution a Twilio webhook belongs to, and what it does there.

* No ``FlowEvent`` and no execution for this contact (or call): start one
  (``incomingCall`` / ``incomingMessage``).
* ``FlowEvent=<event>``: resume the execution parked on a widget that accepts
  that event; anything else is stale and answered with an empty ``<Response/>``.
* An incoming message while an execution waits in Send & Wait For Reply resumes it.
* A status callback (``CallStatus`` completed, busy, failed, no-answer, canceled)
  ends the call's execution.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.messages import Reply, WebhookReceived

from .runner import Outcome, begin, finish, new_state, resume
from .sprint import EMPTY_TWIML, Env, Sprint
from .state import ExecutionState, RouteState

__all__ = ["FINAL_CALL_STATUSES", "route_webhook"]

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def _empty(event: WebhookReceived, outcome: Outcome) -> Outcome:
    if event.reply_id:
        outcome.commands.append(Reply(event.reply_id, event.reply_partition, "ok", twiml=EMPTY_TWIML))
    return outcome


def _target(event: WebhookReceived, route: RouteState) -> str | None:
    if event.call_sid and event.call_sid in route.calls:
        return route.calls[event.call_sid]
    if event.channel == "message" and route.active:
        return route.active[0]
    return None


def route_webhook(event: WebhookReceived, route: RouteState, executions: Mapping[str, ExecutionState],
                  env: Env) -> Outcome:
    outcome = Outcome(route)
    params = event.params if isinstance(event.params, dict) else {}
    sid = _target(event, route)
    if sid is None and event.new_execution_sid in route.recent:
        return _empty(event, outcome)  # replay of a webhook whose execution already ended
    if sid is None and event.new_execution_sid in route.active:
        sid = event.new_execution_sid
    stored = executions.get(sid) if sid else None

    if stored is None:
        if event.flow_event or params.get("CallStatus", "") in FINAL_CALL_STATUSES:
            return _empty(event, outcome)  # nothing to resume or end
        flow = env.flows(event.flow_sid, event.revision)
        if flow is None:
            return _empty(event, outcome)
        if event.channel == "voice" and route.active and not flow.allow_concurrent_calls:
            if event.reply_id:
                outcome.commands.append(Reply(event.reply_id, event.reply_partition, "busy", twiml=EMPTY_TWIML))
            return outcome
        return _start(event, route, flow, env, outcome, params)

    state = stored.copy()
    flow = env.flows(state.flow_sid, state.revision)
    if flow is None:
        return _empty(event, outcome)
    sprint = Sprint(state, route, flow, env)
    if event.reply_id:
        if state.reply_id and state.reply_id != event.reply_id:
            # The earlier webhook gave up waiting (keep-alive redirect); this one takes over.
            pass
        state.reply_id, state.reply_partition = event.reply_id, event.reply_partition
    if params.get("CallStatus", "") in FINAL_CALL_STATUSES and not event.flow_event:
        sprint.end("call_ended")
        return finish(sprint, outcome)
    wait = state.wait
    if wait is None:
        return finish(sprint, outcome)
    if event.flow_event == "keepalive":
        if wait.kind != "http" and wait.twiml:
            sprint.twiml = wait.twiml  # answer the keep-alive with what the call should be doing
        return finish(sprint, outcome)
    accepted = event.flow_event in wait.events or (
        not event.flow_event and event.channel == "message" and wait.kind == "message")
    if not accepted:
        if wait.twiml and wait.kind != "http":
            sprint.twiml = wait.twiml
        return finish(sprint, outcome)
    resume(sprint, flow, event)
    return finish(sprint, outcome)


def _start(event: WebhookReceived, route: RouteState, flow: object, env: Env, outcome: Outcome,
           params: dict[str, str]) -> Outcome:
    from shared.flow import FlowDefinition

    assert isinstance(flow, FlowDefinition)
    voice = event.channel == "voice"
    contact = params.get("From", "")
    channel_address = params.get("To", "")
    trigger = {"call": dict(params)} if voice else {"message": dict(params)}
    state = new_state(event.new_execution_sid, event.flow_sid, event.revision, event.route, contact,
                      channel_address, event.call_sid or params.get("MessageSid", "") or params.get("SmsSid", ""),
                      event.channel, trigger, {}, event.received_at)
    state.call_sid = event.call_sid if voice else ""
    state.reply_id, state.reply_partition = event.reply_id, event.reply_partition
    route.add(state.sid, state.call_sid)
    sprint = Sprint(state, route, flow, env)
    begin(sprint, flow, "incomingCall" if voice else "incomingMessage")
    return finish(sprint, outcome)
