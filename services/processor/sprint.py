"""One run of the state machine over one execution: the working set a widget sees.

A sprint starts when an event reaches an execution and ends when the execution
parks on a widget that waits (HTTP result, webhook, reply, timer) or ends.
Everything it produces is collected here and handed back; nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from shared.flow import FlowDefinition, State
from shared.ids import derived_sid
from shared.liquid_render import render, render_value
from shared.messages import CancelTimer, Command, ExecutionRecord, Reply, StepRecord
from shared.settings import Settings

from .state import ExecutionState, RouteState, Wait

__all__ = ["MAX_STEPS", "MAX_STREAK", "Descend", "Env", "Next", "Park", "Sprint"]

MAX_STEPS = 1000
MAX_STREAK = 10


def _no_revisions(flow_sid: str, published: bool) -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class Env:
    """What the state machine may consult besides the event: time, settings, flow definitions."""

    now: float
    settings: Settings
    flows: Callable[[str, int], FlowDefinition | None]
    #: Kafka offset of the event being handled (-1: unknown, e.g. in unit tests); see ``replay.py``.
    offset: int = -1
    #: The partition's committed offset: events below it will never be replayed (-1: unknown).
    committed: int = -1
    #: ``(flow sid, published)`` -> the number of the flow's latest published revision (``published``
    #: true) or of its latest revision, draft or not; ``None`` if it has none (Run Subflow's revisions).
    latest_revision: Callable[[str, bool], int | None] = _no_revisions


@dataclass(frozen=True, slots=True)
class Next:
    """The widget finished: take ``event`` and store ``outputs`` at ``widgets.NAME``."""

    event: str
    outputs: dict[str, Any] | None = None
    merge: bool = False  # Run Function merges ``parsed`` into the previous run's object
    explicit: bool = False  # ``target`` chosen by the widget (a split's matching transition)
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Park:
    """The widget waits; ``twiml`` (voice) is what the live call is told meanwhile."""

    wait: Wait
    commands: tuple[Command, ...] = ()
    twiml: str | None = None


@dataclass(frozen=True, slots=True)
class Descend:
    """Run Subflow: run revision ``revision`` of ``flow_sid`` (``definition``) inside this execution now."""

    flow_sid: str
    revision: int
    definition: FlowDefinition
    parameters: dict[str, Any]


@dataclass
class Sprint:
    state: ExecutionState
    route: RouteState
    flow: FlowDefinition
    env: Env
    commands: list[Command] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    twiml: str | None = None

    # -- rendering ---------------------------------------------------------------------------

    def render(self, template: Any) -> str:
        """Render a property (Liquid) against the execution context; non-strings become strings."""
        if template is None:
            return ""
        if not isinstance(template, str):
            template = str(template)
        return render(template, self.state.context)

    def render_value(self, value: Any) -> Any:
        return render_value(value, self.state.context)

    def token(self) -> str:
        """A token unique to the wait that is about to start."""
        return f"{self.state.step_count}"

    def derived(self, prefix: str, *parts: object) -> str:
        return derived_sid(prefix, self.state.sid, *parts)

    # -- steps -------------------------------------------------------------------------------

    def complete(self, widget: State, result: Next, sid: str = "", started: float | None = None) -> str | None:
        """Record the step for ``widget`` taking ``result.event``; return the next widget's name.

        ``sid``/``started``: the step's sid and start when fixed beforehand (a Run Subflow step).
        """
        state = self.state
        nxt = result.target if result.explicit else widget.next_for(result.event)
        if result.outputs is not None:
            widgets = state.context.setdefault("widgets", {})
            previous = widgets.get(widget.name)
            outputs = dict(result.outputs)
            if result.merge and isinstance(previous, dict):
                merged_parsed = dict(previous.get("parsed") or {})
                if isinstance(outputs.get("parsed"), dict):
                    merged_parsed.update(outputs["parsed"])
                if merged_parsed or "parsed" in previous:
                    outputs["parsed"] = merged_parsed
            widgets[widget.name] = outputs
        index = state.step_count
        if started is None:
            started = state.wait.started_at if state.wait and state.wait.widget == widget.name else self.env.now
        self.steps.append(StepRecord(
            sid=sid or derived_sid("FT", state.sid, index),
            execution_sid=state.sid,
            flow_sid=state.flow_sid,
            index=index,
            name=result.event,
            transitioned_from=widget.name,
            transitioned_to=nxt or "Ended",
            type=widget.type,
            context={"widgets": {widget.name: result.outputs}} if result.outputs is not None else {},
            date_created=started,
            date_updated=self.env.now,
            parent_step_sid=state.frames[-1].step_sid if state.frames else "",
        ))
        state.step_count += 1
        state.wait = None
        return nxt

    def limit_step(self, widget: State, code: int, message: str) -> None:
        """Record the step a limit cut short; it ends the execution."""
        state = self.state
        index = state.step_count
        self.steps.append(StepRecord(
            sid=derived_sid("FT", state.sid, index), execution_sid=state.sid, flow_sid=state.flow_sid,
            index=index, name=str(code), transitioned_from=widget.name, transitioned_to="Ended",
            type=widget.type, context={"error": {"code": code, "message": message}},
            date_created=self.env.now, date_updated=self.env.now,
            parent_step_sid=state.frames[-1].step_sid if state.frames else "",
        ))
        state.step_count += 1

    # -- ending ------------------------------------------------------------------------------

    def end(self, reason: str, code: int = 0, message: str = "") -> None:
        state = self.state
        if state.status == "ended":
            return
        state.status = "ended"
        state.end_reason = reason
        while state.frames:  # ended inside a subflow: the execution's context is its own flow's again
            state.leave_frame()
        if code:
            state.context["error"] = {"code": code, "message": message}
        if state.wait and state.wait.timer_id:
            self.commands.append(CancelTimer(state.wait.timer_id))
        if state.expiry_timer:
            self.commands.append(CancelTimer(state.expiry_timer))
        state.wait = None
        self.route.finish(state.sid)

    # -- replies -----------------------------------------------------------------------------

    def record(self) -> ExecutionRecord:
        s = self.state
        return ExecutionRecord(
            sid=s.sid, flow_sid=s.flow_sid, revision=s.revision, route=s.route,
            contact_address=s.contact_address, channel_address=s.channel_address, status=s.status,
            context=s.context, initiated_by=s.initiated_by, date_created=s.created_at,
            date_updated=self.env.now, step_count=s.step_count, end_reason=s.end_reason,
        )

    def flush_reply(self) -> None:
        """Answer the webhook that waits on this execution, once it has TwiML or has ended."""
        s = self.state
        if not s.reply_id:
            return
        if self.twiml is None and s.status == "active" and s.wait is not None and s.wait.kind == "http":
            return  # still running non-TwiML widgets (an HTTP call): keep the webhook waiting for its TwiML
        twiml = self.twiml if self.twiml is not None else EMPTY_TWIML
        # The snapshot lets the answering ingress list the execution at once (read-your-writes).
        self.commands.append(Reply(reply_id=s.reply_id, partition=s.reply_partition, status="ok", twiml=twiml,
                                   execution=asdict(self.record())))
        s.reply_id, s.reply_partition = "", -1


EMPTY_TWIML = str(VoiceResponse())  # '<?xml version="1.0" encoding="UTF-8"?><Response />', the same for messaging
