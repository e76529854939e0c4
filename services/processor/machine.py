"""The execution state machine: ``handle(event, route, executions, env) -> Outcome``.

Pure: it reads the route's and executions' current state, the event and the
injected ``Env`` (time, settings, flow definitions) and returns the new state
plus everything to publish. The faust agent stores and sends; nothing here does
I/O. Events that arrive late, twice, or for a wait the execution has left are
recognised by their wait token and ignored (but a pending reply is re-sent, so
a replay after a crash still answers).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.flow import FlowDefinition
from shared.ids import derived_sid
from shared.messages import EndRequested, Event, HttpResult, Reply, StartExecution, TimerFired, WebhookReceived

from .replay import is_replay, reemit, remember
from .runner import EXPIRY_TOKEN, Outcome, begin, finish, new_state, record_dict, resume
from .sprint import Env, Sprint
from .state import ExecutionState, RouteState
from .webhook_routing import route_webhook

__all__ = ["Outcome", "handle"]



def handle(event: Event, route: RouteState, executions: Mapping[str, ExecutionState], env: Env) -> Outcome:
    """Apply one event. ``executions`` gives read access to stored execution states by sid.

    An event the route has already applied (a replay after a crash, recognised by its Kafka offset)
    changes nothing and re-emits the outputs it produced that still matter (``replay.py``).
    """
    if is_replay(route, env):
        return reemit(route, executions, env)
    return remember(_apply(event, route, executions, env), env)


def _apply(event: Event, route: RouteState, executions: Mapping[str, ExecutionState], env: Env) -> Outcome:
    route = route.copy()
    if isinstance(event, StartExecution):
        return _start_rest(event, route, executions, env)
    if isinstance(event, WebhookReceived):
        return _webhook(event, route, executions, env)
    sid = event.execution_sid
    stored = executions.get(sid)
    outcome = Outcome(route)
    if stored is None or stored.status != "active":
        if isinstance(event, EndRequested) and event.reply_id:
            status = "ok" if stored is not None or sid in route.recent else "not_found"
            outcome.commands.append(Reply(event.reply_id, event.reply_partition, status))
        return outcome  # late or duplicate: the execution has ended
    flow = env.flows(stored.flow_sid, stored.revision)
    state = stored.copy()
    if flow is None:
        sprint = Sprint(state, route, _EMPTY_FLOW, env)
        # Studio has no code for this (deleting a flow deletes its executions there): 20404, "not found".
        sprint.end("failed", 20404, "the flow revision this execution runs is gone (the flow was deleted)")
        return finish(sprint, outcome)
    sprint = Sprint(state, route, flow, env)
    if isinstance(event, EndRequested):
        sprint.end("ended" if event.reason == "api" else event.reason)
        if event.reply_id:
            outcome.commands.append(Reply(event.reply_id, event.reply_partition, "ok"))
        return finish(sprint, outcome)
    if isinstance(event, TimerFired) and event.token == EXPIRY_TOKEN:
        sprint.end("expired")
        return finish(sprint, outcome)
    wait = state.wait
    if wait is None or wait.token != event.token:
        return outcome  # stale: for a wait this execution has already left
    if isinstance(event, TimerFired) and event.timer_id != wait.timer_id:
        return outcome
    if isinstance(event, HttpResult) and wait.data.get("request_id") != event.request_id:
        return outcome  # only the wait that sent this request (an HTTP widget, a message send) takes its result
    resume(sprint, flow, event)
    return finish(sprint, outcome)


# -- starting ------------------------------------------------------------------------------------


def _start_rest(event: StartExecution, route: RouteState, executions: Mapping[str, ExecutionState], env: Env) -> Outcome:
    outcome = Outcome(route)
    sid = event.execution_sid
    if sid in route.active or sid in route.recent:  # a replay of a start already applied
        stored = executions.get(sid)
        if event.reply_id and stored is not None:
            outcome.commands.append(Reply(event.reply_id, event.reply_partition, "ok",
                                          execution=record_dict(stored, env.now)))
        return outcome
    flow = env.flows(event.flow_sid, event.revision)
    if flow is None:
        if event.reply_id:
            outcome.commands.append(Reply(event.reply_id, event.reply_partition, "not_found", error_code=20404,
                                          error_message=f"The requested resource /Flows/{event.flow_sid} was not found"))
        return outcome
    if route.active:
        if event.reply_id:
            outcome.commands.append(Reply(
                event.reply_id, event.reply_partition, "conflict", error_code=20409,
                error_message=f"Execution {route.active[0]} is already active for this contact. "
                              "End it before creating a new one."))
        return outcome
    trigger = {"request": {"from": event.channel_address, "to": event.contact_address,
                           "parameters": event.flow_data if isinstance(event.flow_data, dict) else {}}}
    state = new_state(sid, event.flow_sid, event.revision, event.route, event.contact_address,
                       event.channel_address, event.initiated_by or derived_sid("RQ", sid), "request",
                       trigger, event.flow_data, event.created_at)
    sprint = Sprint(state, route, flow, env)
    route.add(sid)
    begin(sprint, flow, "incomingRequest")
    finish(sprint, outcome)
    if event.reply_id:
        outcome.commands.append(Reply(event.reply_id, event.reply_partition, "ok",
                                      execution=record_dict(sprint.state, env.now)))
    return outcome


def _webhook(event: WebhookReceived, route: RouteState, executions: Mapping[str, ExecutionState], env: Env) -> Outcome:
    return route_webhook(event, route, executions, env)


_EMPTY_FLOW = FlowDefinition("Trigger", {}, (), {}, "", {})
