"""Subflows run inside their parent's execution, on a stack of frames (``ExecutionState.frames``).

One execution, one list of steps, one step and widget-streak count: a subflow
is another flow definition the runner switches to, not another execution.

* **Entering** (Run Subflow returned ``Descend``): a ``Frame`` saves the
  parent's ``flow``, ``trigger`` and ``widgets`` context; the subflow gets its
  own — ``flow`` (its flow sid, the execution's sid and channel, empty
  ``data`` and ``variables``), ``trigger.parent`` (``parameters``,
  ``execution_sid``, ``flow_sid`` and ``step_sid`` of the parent's Run Subflow
  step) and empty ``widgets``; ``contact`` is shared. Then the subflow's
  trigger takes ``incomingParent``.
* While in a subflow every step names the Run Subflow step in
  ``parent_step_sid``, and waits are resumed in the subflow's definition
  (``active_flow``).
* **Completed**: when the subflow reaches an end, the parent's context comes
  back and the Run Subflow widget takes ``completed`` with the variables the
  subflow set (its ``flow.variables``) as ``widgets.NAME.<key>``.
* **Failed**: a widget error that would end an execution (81002, 81018) ends
  the subflow instead — its step records the error — and the Run Subflow widget
  takes ``failed`` with ``widgets.NAME.error`` = ``81024: Subflow Error: …``.
  The same when the subflow's revision is gone while it runs.
* The limits (81000, 81001), an ended call, a REST end or expiry end the whole
  execution, as anywhere else (``Sprint.end`` restores the parent's context).
"""

from __future__ import annotations

from shared.flow import FlowDefinition, State
from shared.messages import CancelTimer

from .sprint import Descend, Next, Sprint
from .state import Frame
from .widgets.subflow import SUBFLOW_ERROR

__all__ = ["active_flow", "ascend", "descend", "fail"]


def active_flow(sprint: Sprint) -> FlowDefinition | None:
    """The definition the execution runs now: the innermost subflow's, else its own."""
    frames = sprint.state.frames
    if not frames:
        return sprint.flow
    return sprint.env.flows(frames[-1].flow_sid, frames[-1].revision)


def descend(sprint: Sprint, widget: State, call: Descend) -> str | None:
    """Start the subflow ``call`` names from the Run Subflow ``widget``; return its first widget's name."""
    state = sprint.state
    step_sid = sprint.derived("FT", "subflow", state.step_count)
    parent_flow = state.context.get("flow") or {}
    channel = dict(parent_flow.get("channel") or {"address": state.channel_address})
    context = {
        "flow": {"flow_sid": call.flow_sid, "sid": state.sid, "channel": channel, "data": {}, "variables": {}},
        "trigger": {"parent": {"parameters": call.parameters, "execution_sid": state.sid,
                               "flow_sid": state.flow_sid, "step_sid": step_sid}},
        "widgets": {},
    }
    state.enter_frame(Frame(widget.name, call.flow_sid, call.revision, step_sid, sprint.env.now), context)
    trigger = call.definition.states.get(call.definition.initial_state)
    if trigger is None:
        return None
    return sprint.complete(trigger, Next("incomingParent", None))


def ascend(sprint: Sprint) -> str | None:
    """The subflow reached an end: the Run Subflow widget takes ``completed`` with its variables."""
    variables = (sprint.state.context.get("flow") or {}).get("variables") or {}
    return _leave(sprint, Next("completed", dict(variables)))


def fail(sprint: Sprint, reason: str) -> str | None:
    """The subflow cannot go on: the Run Subflow widget takes ``failed`` (81024) with ``reason``."""
    state = sprint.state
    if state.wait is not None and state.wait.timer_id:
        sprint.commands.append(CancelTimer(state.wait.timer_id))
    state.wait = None
    return _leave(sprint, Next("failed", {"error": f"{SUBFLOW_ERROR}: Subflow Error: {reason}"}))


def _leave(sprint: Sprint, result: Next) -> str | None:
    frame = sprint.state.leave_frame()
    parent = active_flow(sprint)
    widget = parent.states.get(frame.widget) if parent is not None else None
    if widget is None:  # the parent's own definition is gone too: nothing left to run
        sprint.end("failed", 20404, "the flow revision this execution runs is gone (the flow was deleted)")
        return None
    return sprint.complete(widget, result, sid=frame.step_sid, started=frame.started_at)
