"""The steps every processor loop takes around the pure state machine (the batched loop and the faust agent).

Decode an event (undecodable or not an event: counted and dropped), wait until the flows it names are known,
run ``machine.handle`` with a poison guard (a failing event is counted and skipped, never crash-looped on), and
fold the outcome's execution changes into the route's executions.
"""

from __future__ import annotations

import logging

from shared import metrics
from shared.clock import Clock
from shared.flow_catalog import FlowCatalog, flow_wait
from shared.logs import rebind
from shared.messages import (
    DecodeError,
    EndRequested,
    HttpResult,
    StartExecution,
    TimerFired,
    WebhookReceived,
    decode,
)

from .machine import handle
from .runner import Outcome
from .sprint import Env
from .state import ExecutionState, RouteState

__all__ = ["EVENTS", "Event", "apply_event", "decode_event", "wait_for_flows"]

log = logging.getLogger(__name__)

Event = StartExecution | WebhookReceived | HttpResult | TimerFired | EndRequested
EVENTS = (StartExecution, WebhookReceived, HttpResult, TimerFired, EndRequested)


def decode_event(value: bytes | None, offset: int) -> Event | None:
    """The event in ``value``, or None (counted) for anything undecodable or not an event."""
    try:
        message = decode(value or b"")
    except DecodeError as exc:
        log.error("dropping an undecodable event", extra={"fields": {"error": str(exc), "offset": offset}})
        metrics.PROCESSOR_EVENTS.labels("undecodable", "dropped").inc()
        return None
    if not isinstance(message, EVENTS):
        metrics.PROCESSOR_EVENTS.labels(message.kind, "dropped").inc()
        return None
    return message


async def wait_for_flows(catalog: FlowCatalog, message: Event, clock: Clock) -> None:
    """Wait until the catalog can answer for ``message``; bind the log context to its execution."""
    if not catalog.ready.is_set():
        # After a restart the flows are re-read from Kafka; an event handled before that would
        # find its flow "gone" and end its execution (20404). Wait until the catalog caught up.
        await catalog.ready.wait()
    if isinstance(message, StartExecution | WebhookReceived):
        sent_at = message.created_at if isinstance(message, StartExecution) else message.received_at
        await catalog.wait_for(message.flow_sid, message.revision, timeout=flow_wait(clock.now(), sent_at))
    rebind(execution_sid=getattr(message, "execution_sid", ""), flow_sid=getattr(message, "flow_sid", ""))


def apply_event(message: Event, route: RouteState, executions: dict[str, ExecutionState],
                env: Env) -> Outcome | None:
    """Run the state machine and fold its execution changes into ``executions``; None for a poison event."""
    try:
        outcome = handle(message, route, executions, env)
    except Exception:  # noqa: BLE001 - a poison event is skipped (and counted), not crash-looped on
        log.exception("the state machine failed on an event; skipping it")
        metrics.PROCESSOR_EVENTS.labels(message.kind, "failed").inc()
        return None
    for sid, state in outcome.executions.items():
        if state is None:
            executions.pop(sid, None)
        else:
            executions[sid] = state
    return outcome
