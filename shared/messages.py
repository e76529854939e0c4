"""Every message that crosses Kafka, as frozen dataclasses, plus the one codec.

Events flow into the processor (topic ``events``, keyed by the execution's
route); commands flow out of it (``http-requests``, ``timers``, ``replies``);
records describe what happened (``history``) and what flows exist (``flows``).
Each message names its ``kind`` so one topic can carry several types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import orjson

__all__ = [
    "CancelTimer",
    "Command",
    "DecodeError",
    "EndRequested",
    "Event",
    "ExecutionRecord",
    "FlowRecord",
    "HttpRequest",
    "HistoryBatch",
    "HttpResult",
    "Message",
    "Reply",
    "ScheduleTimer",
    "StartExecution",
    "StepRecord",
    "TimerFired",
    "WebhookReceived",
    "decode",
    "encode",
    "history_batch",
]

JSON: TypeAlias = Any


class DecodeError(ValueError):
    """A payload is not a message this codec knows."""


# --- events: into the processor -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartExecution:
    """Start an execution over REST (``POST /v2/Flows/{sid}/Executions``)."""

    kind: ClassVar[str] = "start"
    execution_sid: str
    flow_sid: str
    revision: int
    route: str
    contact_address: str
    channel_address: str
    flow_data: JSON
    created_at: float
    initiated_by: str = ""
    reply_id: str = ""
    reply_partition: int = -1


@dataclass(frozen=True, slots=True)
class WebhookReceived:
    """A Twilio webhook hit the flow URL: incoming call/message, a ``FlowEvent`` resume or a status callback.

    ``new_execution_sid`` is chosen by the ingress so a replay after a crash
    starts the very same execution.
    """

    kind: ClassVar[str] = "webhook"
    flow_sid: str
    revision: int
    route: str
    channel: str  # "voice" | "message" | "conversation"
    params: JSON  # query and form parameters, str -> str
    flow_event: str
    call_sid: str
    new_execution_sid: str
    received_at: float
    reply_id: str = ""
    reply_partition: int = -1


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What the http-worker saw for one ``HttpRequest``."""

    kind: ClassVar[str] = "http_result"
    request_id: str
    execution_sid: str
    route: str
    token: str
    ok: bool
    status_code: int | None
    content_type: str
    body: str
    error: str
    outcome: str  # 2xx|3xx|4xx|5xx|timeout|too_large|refused|connection_error|invalid (see http_worker/perform.py)
    elapsed: float
    headers: JSON = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the processor scheduled came due."""

    kind: ClassVar[str] = "timer_fired"
    timer_id: str
    execution_sid: str
    route: str
    token: str
    due_at: float
    fired_at: float


@dataclass(frozen=True, slots=True)
class EndRequested:
    """End an active execution (REST ``Status=ended``), or drop it (``delete``)."""

    kind: ClassVar[str] = "end"
    execution_sid: str
    route: str
    requested_at: float
    reason: str = "api"
    reply_id: str = ""
    reply_partition: int = -1


Event: TypeAlias = StartExecution | WebhookReceived | HttpResult | TimerFired | EndRequested


# --- commands: out of the processor ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """Perform one outbound HTTP call; ``request_id`` doubles as the idempotency key."""

    kind: ClassVar[str] = "http_request"
    request_id: str
    execution_sid: str
    route: str
    token: str
    purpose: str  # "http" | "function" | "message" | "recording" | "call" (also the metrics label)
    method: str
    url: str
    content_type: str
    body: str | None
    form: JSON  # list of [key, value]
    query: JSON  # list of [key, value]
    twilio_auth: bool
    accept_3xx: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Fire ``TimerFired`` at ``due_at``. Cancelling is a tombstone on the same key."""

    kind: ClassVar[str] = "timer"
    timer_id: str
    execution_sid: str
    route: str
    token: str
    due_at: float


@dataclass(frozen=True, slots=True)
class Reply:
    """The processor's answer to a request that waits (a webhook or a REST call)."""

    kind: ClassVar[str] = "reply"
    reply_id: str
    partition: int
    status: str  # "ok" | "conflict" | "not_found" | "gone" | "error"
    twiml: str = ""
    execution: JSON = None
    error_code: int = 0
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget a timer; published as a tombstone on the ``timers`` topic."""

    kind: ClassVar[str] = "cancel_timer"
    timer_id: str


Command: TypeAlias = HttpRequest | ScheduleTimer | CancelTimer | Reply


# --- records: history and flows --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    kind: ClassVar[str] = "execution"
    sid: str
    flow_sid: str
    revision: int
    route: str
    contact_address: str
    channel_address: str
    status: str  # "active" | "ended"
    context: JSON
    initiated_by: str
    date_created: float
    date_updated: float
    step_count: int = 0
    end_reason: str = ""


@dataclass(frozen=True, slots=True)
class StepRecord:
    kind: ClassVar[str] = "step"
    sid: str
    execution_sid: str
    flow_sid: str
    index: int
    name: str
    transitioned_from: str
    transitioned_to: str
    type: str
    context: JSON
    date_created: float
    date_updated: float
    #: A subflow's step: the sid of the parent flow's Run Subflow step that runs it ("" otherwise).
    parent_step_sid: str = ""


@dataclass(frozen=True, slots=True)
class HistoryBatch:
    """What one sprint of one execution changed: its new steps and its snapshot, in one message.

    Keyed by execution sid, so an execution's batches stay in order on one partition and a
    sprint costs one message instead of one per step. ``execution`` and ``steps`` hold the
    fields of ``ExecutionRecord`` / ``StepRecord`` (without ``kind``).
    """

    kind: ClassVar[str] = "history"
    execution: JSON  # None when a batch carries steps only
    steps: JSON = field(default_factory=list)

    @property
    def execution_sid(self) -> str:
        if self.execution:
            return str(self.execution["sid"])
        return str(self.steps[0]["execution_sid"]) if self.steps else ""


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One revision of a flow; the flow itself is its highest revision."""

    kind: ClassVar[str] = "flow"
    sid: str
    revision: int
    friendly_name: str
    status: str  # "draft" | "published"
    definition: JSON
    commit_message: str
    valid: bool
    errors: JSON
    warnings: JSON
    date_created: float
    date_updated: float
    author_sid: str = ""
    test_users: JSON = field(default_factory=list)


Message: TypeAlias = Event | Command | ExecutionRecord | StepRecord | HistoryBatch | FlowRecord

_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        StartExecution, WebhookReceived, HttpResult, TimerFired, EndRequested,
        HttpRequest, ScheduleTimer, CancelTimer, Reply, ExecutionRecord, StepRecord, HistoryBatch, FlowRecord,
    )
}
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _TYPES.values()
}


def encode(message: Message) -> bytes:
    """Serialize a message to JSON bytes tagged with its kind."""
    cls = type(message)
    payload = {name: getattr(message, name) for name in _FIELDS[cls]}
    payload["kind"] = cls.kind
    return orjson.dumps(payload)


def decode(data: bytes) -> Message:
    """Inverse of :func:`encode`; raises :class:`DecodeError` for anything else."""
    try:
        payload = orjson.loads(data)
        cls = _TYPES[payload.pop("kind")]
        return cls(**payload)  # type: ignore[no-any-return]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DecodeError(f"undecodable message: {exc}") from exc


def history_batch(records: list[ExecutionRecord | StepRecord]) -> list[HistoryBatch]:
    """Group one outcome's records into one batch per execution (steps in order, the last snapshot)."""
    steps: dict[str, list[dict[str, Any]]] = {}
    snapshots: dict[str, ExecutionRecord] = {}
    for record in records:
        if isinstance(record, StepRecord):
            step = {name: getattr(record, name) for name in _FIELDS[StepRecord]}
            if not record.parent_step_sid:
                del step["parent_step_sid"]  # only subflow steps carry it, so older readers read the rest
            steps.setdefault(record.execution_sid, []).append(step)
        else:
            snapshots[record.sid] = record
    batches = [
        HistoryBatch({name: getattr(snap, name) for name in _FIELDS[ExecutionRecord]}, steps.pop(sid, []))
        for sid, snap in snapshots.items()
    ]
    batches.extend(HistoryBatch(None, rest) for rest in steps.values())
    return batches
