"""What the processor remembers about executions and routes between events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["ExecutionState", "Frame", "RouteState", "Wait", "decode_route_record", "encode_route_record"]


@dataclass(slots=True)
class Wait:
    """The widget an execution is parked on, and what would resume it.

    ``token`` is unique per wait, so a result, return or timer meant for an
    earlier wait (late, duplicated, replayed) is recognised and ignored.
    """

    widget: str
    kind: str  # "http" | "webhook" | "message"
    token: str
    events: tuple[str, ...] = ()  # FlowEvent values accepted (webhook waits)
    timer_id: str = ""
    twiml: str = ""  # what the live call was told to do while parked here
    started_at: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "widget": self.widget, "kind": self.kind, "token": self.token, "events": list(self.events),
            "timer_id": self.timer_id, "twiml": self.twiml, "started_at": self.started_at, "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Wait:
        return cls(d["widget"], d["kind"], d["token"], tuple(d.get("events", ())), d.get("timer_id", ""),
                   d.get("twiml", ""), d.get("started_at", 0.0), d.get("data", {}))


#: The parts of an execution's context a subflow has its own of; ``contact`` (and ``error``) are shared.
FRAME_CONTEXT_KEYS = ("flow", "trigger", "widgets")


@dataclass(slots=True)
class Frame:
    """A subflow the execution is running: entered from the parent's Run Subflow widget ``widget``.

    ``saved`` holds the parent's ``flow``, ``trigger`` and ``widgets`` context while the subflow has
    its own; ``last_widget``/``streak`` the parent's "same widget in a row" count at the time.
    ``step_sid`` is the sid the Run Subflow step gets when it is left (the subflow's steps name it
    as their ``parent_step_sid``); ``started_at`` is when the widget was entered.
    """

    widget: str
    flow_sid: str
    revision: int
    step_sid: str
    started_at: float
    saved: dict[str, Any] = field(default_factory=dict)
    last_widget: str = ""
    streak: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"widget": self.widget, "flow_sid": self.flow_sid, "revision": self.revision,
                "step_sid": self.step_sid, "started_at": self.started_at, "saved": self.saved,
                "last_widget": self.last_widget, "streak": self.streak}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frame:
        return cls(d["widget"], d["flow_sid"], int(d["revision"]), d["step_sid"], d.get("started_at", 0.0),
                   d.get("saved", {}), d.get("last_widget", ""), d.get("streak", 0))


@dataclass(slots=True)
class ExecutionState:
    """One execution, as stored in the processor's ``executions`` table."""

    sid: str
    flow_sid: str
    revision: int
    route: str
    contact_address: str
    channel_address: str
    initiated_by: str
    channel: str  # "request" | "voice" | "message"
    context: dict[str, Any]
    created_at: float
    updated_at: float
    status: str = "active"
    step_count: int = 0
    last_widget: str = ""
    streak: int = 0
    wait: Wait | None = None
    call_sid: str = ""
    reply_id: str = ""
    reply_partition: int = -1
    end_reason: str = ""
    expiry_timer: str = ""
    #: The flow no longer controls a live call: the caller hung up, or a TwiML Redirect timed out.
    call_released: bool = False
    #: Ids of the webhooks already applied (newest last, bounded), so a replayed webhook is not applied twice.
    webhooks: list[str] = field(default_factory=list)
    #: The subflows being run, innermost last (Run Subflow); empty in the execution's own flow. Rows
    #: written before subflows existed have no such field and decode with none.
    frames: list[Frame] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        d["wait"] = self.wait.to_dict() if self.wait else None
        d["frames"] = [frame.to_dict() for frame in self.frames]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecutionState:
        d = dict(d)
        wait = d.pop("wait")
        frames = d.pop("frames", None) or []
        state = cls(**d)
        state.wait = Wait.from_dict(wait) if wait else None
        state.frames = [Frame.from_dict(f) for f in frames]
        return state

    def enter_frame(self, frame: Frame, context: dict[str, Any]) -> None:
        """Start running a subflow: the parent's context parts move into ``frame``, ``context`` replaces them."""
        frame.saved = {key: self.context[key] for key in FRAME_CONTEXT_KEYS if key in self.context}
        frame.last_widget, frame.streak = self.last_widget, self.streak
        for key in FRAME_CONTEXT_KEYS:
            self.context.pop(key, None)
        self.context.update(context)
        self.frames.append(frame)
        self.last_widget, self.streak = "", 0

    def leave_frame(self) -> Frame:
        """Back from the innermost subflow: the parent's context parts and widget streak again."""
        frame = self.frames.pop()
        for key in FRAME_CONTEXT_KEYS:
            self.context.pop(key, None)
        self.context.update(frame.saved)
        self.last_widget, self.streak = frame.last_widget, frame.streak
        return frame

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> ExecutionState:
        return cls.from_dict(orjson.loads(data))

    def copy(self) -> ExecutionState:
        """A deep copy, so the state machine never mutates what it was given."""
        return ExecutionState.from_bytes(self.to_bytes())


@dataclass(slots=True)
class RouteState:
    """Per route (flow + contact): the active executions and the ones that recently ended."""

    active: list[str] = field(default_factory=list)
    calls: dict[str, str] = field(default_factory=dict)  # CallSid -> execution sid
    recent: list[str] = field(default_factory=list)  # recently ended execution sids, newest last
    #: Kafka offset of the last event applied to this route, and the outputs of events not yet
    #: committed as ``[offset, [encoded message…], [execution sid…]]`` (see ``replay.py``).
    applied: int = -1
    outbox: list[list[Any]] = field(default_factory=list)

    RECENT_LIMIT = 32

    def to_dict(self) -> dict[str, Any]:
        return {"active": self.active, "calls": self.calls, "recent": self.recent, "applied": self.applied,
                "outbox": self.outbox}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RouteState:
        return cls(list(d["active"]), dict(d["calls"]), list(d["recent"]), int(d.get("applied", -1)),
                   list(d.get("outbox", [])))

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes | None) -> RouteState:
        if not data:
            return cls()
        return cls.from_dict(orjson.loads(data))

    def copy(self) -> RouteState:
        return RouteState(list(self.active), dict(self.calls), list(self.recent), self.applied, list(self.outbox))

    def add(self, sid: str, call_sid: str = "") -> None:
        if sid not in self.active:
            self.active.append(sid)
        if call_sid:
            self.calls[call_sid] = sid

    def finish(self, sid: str) -> None:
        if sid in self.active:
            self.active.remove(sid)
        self.calls = {c: s for c, s in self.calls.items() if s != sid}
        if sid not in self.recent:
            self.recent.append(sid)
            del self.recent[: -self.RECENT_LIMIT]

    @property
    def empty(self) -> bool:
        return not self.active and not self.calls and not self.recent


def encode_route_record(route: RouteState, executions: dict[str, ExecutionState]) -> bytes:
    """One table row per route: the route's bookkeeping and its active executions.

    Keeping them in one row means one changelog write per event instead of two.
    """
    return orjson.dumps({
        **route.to_dict(),
        "executions": {sid: state.to_dict() for sid, state in executions.items()},
    })


def decode_route_record(data: bytes | None) -> tuple[RouteState, dict[str, ExecutionState]]:
    if not data:
        return RouteState(), {}
    d = orjson.loads(data)
    route = RouteState.from_dict(d)
    return route, {sid: ExecutionState.from_dict(x) for sid, x in d.get("executions", {}).items()}
