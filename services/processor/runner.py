"""Running widgets inside a sprint: shared by REST starts, webhooks and resumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.flow import FlowDefinition, State
from shared.ids import derived_sid
from shared.liquid_render import TemplateError
from shared.messages import Command, Event, ExecutionRecord, ScheduleTimer, StepRecord

from . import frames
from .sprint import MAX_STEPS, MAX_STREAK, Descend, Next, Park, Sprint
from .state import ExecutionState, RouteState
from .widgets import ENTER, RESUME
from .widgets.retired import retired_message

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
    """Enter widgets from ``name`` until one parks, the flow ends, or a limit stops it.

    ``flow`` is the execution's own definition; inside a subflow the subflow's runs (``frames.py``).
    """
    state = sprint.state
    while state.status == "active":
        definition = frames.active_flow(sprint) if state.frames else flow
        if definition is None:
            name = frames.fail(sprint, "the subflow's revision is gone (the flow was deleted)")
            continue
        if name is None:
            if state.frames:
                name = frames.ascend(sprint)  # the subflow ended: back to the parent's Run Subflow widget
                continue
            sprint.end("completed")
            return
        widget = definition.states.get(name)
        if widget is None:
            name = _failure(sprint, None, 81002, f"transition to unknown widget {name!r}")
            continue
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
            reason = retired_message(widget.type) or f"widget type {widget.type!r} is not supported by Switchboard yet"
            name = _failure(sprint, widget, 81002, reason)
            continue
        try:
            result = enter(sprint, widget)
        except TemplateError as exc:
            name = _failure(sprint, widget, 81018, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a widget bug ends this execution, never the processor
            name = _failure(sprint, widget, 81002, _internal_error(widget, exc))
            continue
        if state.status != "active":
            return  # the widget ended the execution (e.g. a TwiML widget after the caller hung up)
        if isinstance(result, Park):
            _park(sprint, result)
            return
        if isinstance(result, Descend):
            name = frames.descend(sprint, widget, result)
            continue
        name = sprint.complete(widget, result)


def resume(sprint: Sprint, flow: FlowDefinition, event: Event) -> None:
    """Resume the widget the execution waits on (in the subflow's definition inside a subflow) with ``event``."""
    state = sprint.state
    assert state.wait is not None
    definition = frames.active_flow(sprint) if state.frames else flow
    if definition is None:
        run(sprint, flow, frames.fail(sprint, "the subflow's revision is gone (the flow was deleted)"))
        return
    widget = definition.states.get(state.wait.widget)
    resume = RESUME.get(widget.type) if widget else None
    if widget is None or resume is None:
        return
    try:
        result = resume(sprint, widget, event)
    except TemplateError as exc:
        run(sprint, flow, _failure(sprint, widget, 81018, str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - a widget bug ends this execution, never the processor
        run(sprint, flow, _failure(sprint, widget, 81002, _internal_error(widget, exc)))
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


def _internal_error(widget: State, exc: Exception) -> str:
    # A bug must not crash-loop the processor (the event would be replayed forever): the execution
    # that hit it ends with a step saying what went wrong.
    return f"internal error in widget {widget.name!r} ({widget.type}): {type(exc).__name__}: {exc}"


def _failure(sprint: Sprint, widget: State | None, code: int, message: str) -> str | None:
    """A widget error: its step records ``code``; the execution ends — inside a subflow, the subflow does.

    Returns the widget to go on with in the parent (Run Subflow's ``failed``), if any.
    """
    if widget is not None:
        sprint.limit_step(widget, code, message)
    if sprint.state.frames:
        return frames.fail(sprint, f"{code}: {message}")
    sprint.end("failed", code, message)
    return None


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


