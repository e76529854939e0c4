"""Running widgets inside a sprint: shared by REST starts, webhooks and resumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.flow import FlowDefinition, State
from shared.ids import derived_sid
from shared.liquid_render import TemplateError
from shared.messages import Command, Event, ExecutionRecord, ScheduleTimer, StepRecord

from .sprint import MAX_STEPS, MAX_STREAK, Next, Park, Sprint
from .state import ExecutionState, RouteState
from .widgets import ENTER, RESUME

__all__ = ["EXPIRY_TOKEN", "Outcome", "begin", "finish", "new_state", "record_dict", "resume", "run"]

EXPIRY_TOKEN = "expiry"


@dataclass
class Outcome:
    """The state machine's answer: new states and what to publish."""

    route: RouteState
    executions: dict[str, ExecutionState | None] = field(default_factory=dict)  # None = forget
    commands: list[Command] = field(default_factory=list)
    records: list[ExecutionRecord | StepRecord] = field(default_factory=list)
    replayed: bool = False  # re-emitted outputs of an event already applied (``replay.py``), nothing new


def new_state(sid: str, flow_sid: str, revision: int, route: str, contact: str, channel_address: str,
               initiated_by: str, channel: str, trigger: dict[str, Any], flow_data: Any, now: float) -> ExecutionState:
    context = {
        "flow": {"flow_sid": flow_sid, "sid": sid, "channel": {"address": channel_address},
                 "data": flow_data if isinstance(flow_data, dict) else {}, "variables": {}},
        "trigger": trigger,
        "widgets": {},
        "contact": {"channel": {"address": contact}},
    }
    return ExecutionState(sid=sid, flow_sid=flow_sid, revision=revision, route=route, contact_address=contact,
                          channel_address=channel_address, initiated_by=initiated_by, channel=channel,
                          context=context, created_at=now, updated_at=now)


def begin(sprint: Sprint, flow: FlowDefinition, trigger_event: str) -> None:
    """Run the trigger step, schedule expiry, then run widgets until one waits."""
    trigger = flow.state(flow.initial_state)
    nxt = sprint.complete(trigger, Next(trigger_event, None))
    run(sprint, flow, nxt)


def run(sprint: Sprint, flow: FlowDefinition, name: str | None) -> None:
    """Enter widgets from ``name`` until one parks, the flow ends, or a limit stops it."""
    state = sprint.state
    while True:
        if name is None:
            sprint.end("completed")
            return
        widget = flow.states.get(name)
        if widget is None:
            sprint.end("failed", 81002, f"transition to unknown widget {name!r}")
            return
        if state.step_count >= MAX_STEPS:
            message = f"Execution exceeded max steps allowed for a flow ({MAX_STEPS})"
            sprint.limit_step(widget, 81000, message)
            sprint.end("step_limit", 81000, message)
            return
        streak = state.streak + 1 if name == state.last_widget else 1
        if streak > MAX_STREAK:
            message = f"Widget {name!r} exceeded max steps in a loop ({MAX_STREAK} in a row)"
            sprint.limit_step(widget, 81001, message)
            sprint.end("loop_limit", 81001, message)
            return
        state.last_widget, state.streak = name, streak
        enter = ENTER.get(widget.type)
        if enter is None:
            message = f"widget type {widget.type!r} is not supported by Switchboard yet"
            sprint.limit_step(widget, 81002, message)
            sprint.end("failed", 81002, message)
            return
        try:
            result = enter(sprint, widget)
        except TemplateError as exc:
            _template_failure(sprint, widget, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a widget bug ends this execution, never the processor
            _internal_failure(sprint, widget, exc)
            return
        if state.status != "active":
            return  # the widget ended the execution (e.g. a TwiML widget after the caller hung up)
        if isinstance(result, Park):
            _park(sprint, result)
            return
        name = sprint.complete(widget, result)


def resume(sprint: Sprint, flow: FlowDefinition, event: Event) -> None:
    state = sprint.state
    assert state.wait is not None
    widget = flow.states.get(state.wait.widget)
    resume = RESUME.get(widget.type) if widget else None
    if widget is None or resume is None:
        return
    try:
        result = resume(sprint, widget, event)
    except TemplateError as exc:
        _template_failure(sprint, widget, exc)
        return
    except Exception as exc:  # noqa: BLE001 - a widget bug ends this execution, never the processor
        _internal_failure(sprint, widget, exc)
        return
    if result is None:
        return
    if isinstance(result, Park):
        _park(sprint, result)
        return
    run(sprint, flow, sprint.complete(widget, result))


def _park(sprint: Sprint, result: Park) -> None:
    sprint.state.wait = result.wait
    sprint.commands.extend(result.commands)
    if result.twiml is not None:
        sprint.twiml = result.twiml


def _internal_failure(sprint: Sprint, widget: State, exc: Exception) -> None:
    # A bug must not crash-loop the processor (the event would be replayed forever): the execution
    # that hit it ends with a step saying what went wrong.
    message = f"internal error in widget {widget.name!r} ({widget.type}): {type(exc).__name__}: {exc}"
    sprint.limit_step(widget, 81002, message)
    sprint.end("failed", 81002, message)


def _template_failure(sprint: Sprint, widget: State, exc: TemplateError) -> None:
    sprint.limit_step(widget, 81018, str(exc))
    sprint.end("failed", 81018, str(exc))


def finish(sprint: Sprint, outcome: Outcome) -> Outcome:
    """Close the sprint: answer a waiting webhook, record history, store or forget the state."""
    state = sprint.state
    _schedule_expiry(sprint)
    sprint.flush_reply()
    state.updated_at = sprint.env.now
    outcome.route = sprint.route
    outcome.commands.extend(sprint.commands)
    outcome.records.extend(sprint.steps)
    outcome.records.append(sprint.record())
    outcome.executions[state.sid] = state if state.status == "active" else None
    return outcome


def _schedule_expiry(sprint: Sprint) -> None:
    """Arm the execution's expiry (Studio: 30 days) once it first waits on the outside world.

    Executions that end within their first sprints, or only wait on HTTP calls (bounded by the
    http-worker's 10 s), never need it — which saves two timer messages per such execution.
    """
    state = sprint.state
    if state.status != "active" or state.expiry_timer or state.wait is None or state.wait.kind == "http":
        return
    expiry = derived_sid("TM", state.sid, EXPIRY_TOKEN)
    state.expiry_timer = expiry
    sprint.commands.append(ScheduleTimer(expiry, state.sid, state.route, EXPIRY_TOKEN,
                                         state.created_at + sprint.env.settings.execution_expiry_seconds))


def record_dict(state: ExecutionState, now: float) -> dict[str, Any]:
    return {
        "sid": state.sid, "flow_sid": state.flow_sid, "revision": state.revision, "route": state.route,
        "contact_address": state.contact_address, "channel_address": state.channel_address,
        "status": state.status, "context": state.context, "initiated_by": state.initiated_by,
        "date_created": state.created_at, "date_updated": now, "step_count": state.step_count,
        "end_reason": state.end_reason,
    }


