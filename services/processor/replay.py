"""Crash recovery: re-emit what an already-applied event produced, instead of stranding its execution.

The faust agent writes a route's row (state) and sends the event's outputs
(HTTP requests, timers, replies, history records) without a transaction. After
a crash, events after the last committed offset are delivered again, but the
row may already hold their effect while some outputs never reached Kafka (the
changelog write went out, the ``HttpRequest`` did not). Applying such an event
again finds the execution past the wait the event was for, so it would be
ignored as stale and the execution would wait forever for a request nobody
sends.

The outbox fixes that. Every applied event stamps its Kafka offset on the row
(``RouteState.applied``) and keeps its outputs in ``RouteState.outbox`` until
the partition's committed offset passes it (an event below the committed
offset is never delivered again). An event at or below ``applied`` is a replay:
the state is left alone and the outputs it produced the first time are sent
again, minus what is provably superseded:

* an ``HttpRequest`` only while its execution still waits for that very request
  (an HTTP widget, or a message send whose result has not come back), so a
  request whose result was already applied is never repeated;
* a ``ScheduleTimer`` only while it is the current wait's timer or the
  execution's expiry timer;
* execution snapshots are re-sent as the execution's *current* snapshot
  (history keeps the newest), or as stored when the execution has ended;
* step records, timer cancellations and replies are sent as they were (history
  records are keyed by sid, cancellations are idempotent, replies no one waits
  for are dropped by the ingress).

Requests carry the same idempotency key when repeated, timers the same id.
Ordinary late or duplicate events arrive at *new* offsets and are handled by
the wait tokens as before: nothing is re-sent for them.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from shared.messages import (
    Command,
    DecodeError,
    ExecutionRecord,
    HttpRequest,
    ScheduleTimer,
    StepRecord,
    decode,
    encode,
)

from .runner import Outcome
from .sprint import Env
from .state import ExecutionState, RouteState

__all__ = ["OUTBOX_LIMIT", "is_replay", "reemit", "remember", "snapshot"]

#: Entries kept when the committed offset is unknown, and at most in any case (a very hot route).
OUTBOX_LIMIT = 64
_UNKNOWN_COMMITTED_KEEP = 16


def is_replay(route: RouteState, env: Env) -> bool:
    """Was the event at ``env.offset`` already applied to this route?"""
    return env.offset >= 0 and env.offset <= route.applied


def remember(outcome: Outcome, env: Env) -> Outcome:
    """Stamp the event's offset on the route and keep its outputs until they are committed."""
    if env.offset < 0:
        return outcome
    route = outcome.route
    route.applied = max(route.applied, env.offset)
    entries = [e for e in route.outbox if e[0] >= env.committed] if env.committed >= 0 else \
        route.outbox[-_UNKNOWN_COMMITTED_KEEP:]
    kept: list[Command | StepRecord | ExecutionRecord] = [*outcome.commands]
    for record in outcome.records:
        # A live execution's snapshot is rebuilt from its state when needed; an ended one's is final.
        if isinstance(record, StepRecord) or outcome.executions.get(record.sid, "gone") is None:
            kept.append(record)
    if kept:
        entries.append([env.offset, [orjson.loads(encode(m)) for m in kept], sorted(_sids(outcome))])
    route.outbox = entries[-OUTBOX_LIMIT:]
    return outcome


def _sids(outcome: Outcome) -> set[str]:
    sids = set(outcome.executions)
    for record in outcome.records:
        sids.add(record.execution_sid if isinstance(record, StepRecord) else record.sid)
    return sids


def reemit(route: RouteState, executions: Mapping[str, ExecutionState], env: Env) -> Outcome:
    """The outputs of the already-applied event at ``env.offset`` that still matter; state untouched."""
    outcome = Outcome(route.copy(), replayed=True)
    entry = next((e for e in route.outbox if e[0] == env.offset), None)
    if entry is None:
        return outcome  # it produced nothing, or its outputs are committed
    for payload in entry[1]:
        try:
            message = decode(orjson.dumps(payload))
        except DecodeError:
            continue
        if isinstance(message, HttpRequest):
            if _awaited(message, executions.get(message.execution_sid)):
                outcome.commands.append(message)
        elif isinstance(message, ScheduleTimer):
            state = executions.get(message.execution_sid)
            if state is not None and message.timer_id in (state.expiry_timer, state.wait.timer_id if state.wait else ""):
                outcome.commands.append(message)
        elif isinstance(message, StepRecord | ExecutionRecord):
            outcome.records.append(message)
        else:
            outcome.commands.append(message)  # type: ignore[arg-type]
    for sid in entry[2]:
        state = executions.get(sid)
        if state is not None:
            outcome.records.append(snapshot(state))
    return outcome


def _awaited(request: HttpRequest, state: ExecutionState | None) -> bool:
    wait = state.wait if state is not None else None
    return (wait is not None and wait.token == request.token and wait.data.get("request_id") == request.request_id
            and not wait.data.get("sent"))


def snapshot(state: ExecutionState) -> ExecutionRecord:
    """The execution's history record as of its stored state."""
    return ExecutionRecord(
        sid=state.sid, flow_sid=state.flow_sid, revision=state.revision, route=state.route,
        contact_address=state.contact_address, channel_address=state.channel_address, status=state.status,
        context=state.context, initiated_by=state.initiated_by, date_created=state.created_at,
        date_updated=state.updated_at, step_count=state.step_count, end_reason=state.end_reason,
    )
