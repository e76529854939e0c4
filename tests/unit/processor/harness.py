"""Drive the pure state machine event by event, the way the faust agent does, without Kafka."""

from __future__ import annotations

from typing import Any

from services.processor.machine import handle
from services.processor.runner import Outcome
from services.processor.sprint import Env
from services.processor.state import ExecutionState, RouteState
from shared.flow import FlowDefinition, parse_definition
from shared.messages import (
    Event,
    ExecutionRecord,
    HttpRequest,
    HttpResult,
    StartExecution,
    StepRecord,
    TimerFired,
    WebhookReceived,
)
from shared.settings import Settings

NOW = 1_700_000_000.0
FLOW_SID = "FW" + "f" * 32
CONTACT = "+15550001111"
CHANNEL = "+15559990000"
ROUTE = f"{FLOW_SID}:{CONTACT}"


def flow_of(*states: dict[str, Any], first: str | None = None) -> FlowDefinition:
    """A flow whose trigger's ``incomingRequest``/``incomingMessage`` lead to the first state given."""
    first = first or (states[0]["name"] if states else None)
    trigger = {"name": "Trigger", "type": "trigger", "properties": {},
               "transitions": [{"event": "incomingRequest", "next": first},
                               {"event": "incomingMessage", "next": first}]}
    return parse_definition({"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
                             "states": [trigger, *states]})


def http_result(request: HttpRequest, status: int | None = 200, body: str = "",
                content_type: str = "application/json", ok: bool | None = None, outcome: str | None = None,
                error: str = "", headers: dict[str, str] | None = None) -> HttpResult:
    """What the http-worker reports for ``request``: ``ok`` follows the status unless given."""
    if ok is None:
        ok = status is not None and (200 <= status < 300 or (request.accept_3xx and 300 <= status < 400))
    return HttpResult(
        request_id=request.request_id, execution_sid=request.execution_sid, route=request.route,
        token=request.token, ok=ok, status_code=status, content_type=content_type, body=body, error=error,
        outcome=outcome or (f"{status // 100}xx" if status else "connection_error"), elapsed=0.01,
        headers=headers or {})


class Harness:
    """Holds the tables and applies outcomes; every call returns the Outcome of one event."""

    def __init__(self, flow: FlowDefinition, settings: Settings | None = None, now: float = NOW) -> None:
        self.flow = flow
        self.settings = settings or Settings()
        self.now = now
        self.route = RouteState()
        self.executions: dict[str, ExecutionState] = {}
        self.outcomes: list[Outcome] = []
        self.offset = 0
        self.committed = -1

    def env(self, offset: int = -1) -> Env:
        return Env(now=self.now, settings=self.settings,
                   flows=lambda sid, rev: self.flow if sid == FLOW_SID else None, offset=offset,
                   committed=self.committed)

    def send(self, event: Event, offset: int | None = None, apply: bool = True) -> Outcome:
        """Handle ``event`` at ``offset`` (default: the next offset) and store the outcome."""
        if offset is None:
            offset = self.offset
            self.offset += 1
        outcome = handle(event, self.route, self.executions, self.env(offset))
        if apply:
            self.apply(outcome)
        self.outcomes.append(outcome)
        return outcome

    def apply(self, outcome: Outcome) -> None:
        self.route = outcome.route
        for sid, state in outcome.executions.items():
            if state is None:
                self.executions.pop(sid, None)
            else:
                self.executions[sid] = state

    # -- events ------------------------------------------------------------------------------

    def start(self, data: dict[str, Any] | None = None, sid: str = "FN" + "1" * 32, **kw: Any) -> Outcome:
        return self.send(StartExecution(execution_sid=sid, flow_sid=FLOW_SID, revision=1, route=ROUTE,
                                        contact_address=CONTACT, channel_address=CHANNEL, flow_data=data or {},
                                        created_at=self.now, reply_id="r1", reply_partition=0), **kw)

    def message(self, body: str, new_sid: str = "FN" + "2" * 32, **params: str) -> Outcome:
        fields = {"From": CONTACT, "To": CHANNEL, "Body": body, "MessageSid": "SM" + "a" * 32,
                  "AccountSid": self.settings.account_sid, "NumMedia": "0", **params}
        return self.send(WebhookReceived(flow_sid=FLOW_SID, revision=1, route=ROUTE, channel="message",
                                         params=fields, flow_event="", call_sid="", new_execution_sid=new_sid,
                                         received_at=self.now, reply_id="w1", reply_partition=0))

    def result(self, request: HttpRequest, status: int | None = 200, body: str = "",
               content_type: str = "application/json", ok: bool | None = None, outcome: str | None = None,
               error: str = "", headers: dict[str, str] | None = None, **kw: Any) -> Outcome:
        return self.send(http_result(request, status, body, content_type, ok, outcome, error, headers), **kw)

    def fire(self, timer_id: str, sid: str, token: str, **kw: Any) -> Outcome:
        return self.send(TimerFired(timer_id, sid, ROUTE, token, self.now, self.now), **kw)

    # -- reading -----------------------------------------------------------------------------

    @property
    def last(self) -> Outcome:
        return self.outcomes[-1]

    def requests(self, outcome: Outcome | None = None) -> list[HttpRequest]:
        return [c for c in (outcome or self.last).commands if isinstance(c, HttpRequest)]

    def steps(self) -> list[StepRecord]:
        """Every step recorded so far, in order, each once."""
        seen: dict[str, StepRecord] = {}
        for outcome in self.outcomes:
            for record in outcome.records:
                if isinstance(record, StepRecord):
                    seen[record.sid] = record
        return sorted(seen.values(), key=lambda s: s.index)

    def path(self) -> list[tuple[str, str, str]]:
        return [(s.name, s.transitioned_from, s.transitioned_to) for s in self.steps()]

    def record(self) -> ExecutionRecord:
        """The newest execution snapshot published."""
        for outcome in reversed(self.outcomes):
            for record in reversed(outcome.records):
                if isinstance(record, ExecutionRecord):
                    return record
        raise AssertionError("no execution record published")

    @property
    def context(self) -> dict[str, Any]:
        return self.record().context  # type: ignore[no-any-return]
