"""Drive the pure state machine with Twilio webhooks, as the ingress would publish them."""

from __future__ import annotations

import itertools
from typing import Any

from services.processor.machine import handle
from services.processor.sprint import Env
from services.processor.state import RouteState
from shared.flow import FlowDefinition, parse_definition
from shared.messages import Reply, StepRecord, TimerFired, WebhookReceived
from shared.settings import Settings

NOW = 1_700_000_000.0
SETTINGS = Settings(public_base_url="https://sb.example.com")
ACCOUNT = SETTINGS.account_sid
WEBHOOK = f"https://sb.example.com/v1/Accounts/{ACCOUNT}/Flows/FWflow"
CALLER, NUMBER = "+15550001111", "+15559990000"
ROUTE = f"FWflow:{CALLER}"
_ids = itertools.count(1)


def flow(*states: dict[str, Any], trigger: dict[str, str] | None = None, concurrent: bool = True) -> FlowDefinition:
    transitions = [{"event": e, "next": n} for e, n in (trigger or {"incomingCall": states[0]["name"]}).items()]
    return parse_definition({
        "initial_state": "Trigger", "flags": {"allow_concurrent_calls": concurrent},
        "states": [{"name": "Trigger", "type": "trigger", "properties": {}, "transitions": transitions}, *states],
    })


def widget(name: str, type_: str, transitions: dict[str, str | None] | None = None, **props: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "properties": props,
            "transitions": [{"event": e, "next": n} for e, n in (transitions or {}).items()]}


class Store(dict):  # type: ignore[type-arg]
    """Stands in for the processor's tables: applies outcomes like the agent does."""

    def __init__(self, definition: FlowDefinition, settings: Settings = SETTINGS) -> None:
        super().__init__()
        self.flow = definition
        self.settings = settings
        self.routes: dict[str, RouteState] = {}
        self.now = NOW

    def env(self, offset: int = -1) -> Env:
        return Env(now=self.now, settings=self.settings, flows=lambda sid, rev: self.flow if sid == "FWflow" else None,
                   offset=offset)

    def send(self, event: Any, route: str = ROUTE, offset: int = -1) -> Any:
        """Handle ``event``; with a Kafka ``offset``, one at or below the last applied is a replay."""
        outcome = handle(event, self.routes.get(route, RouteState()), self, self.env(offset))
        self.routes[route] = outcome.route
        for sid, state in outcome.executions.items():
            if state is None:
                self.pop(sid, None)
            else:
                self[sid] = state
        return outcome


def call_event(params: dict[str, str] | None = None, flow_event: str = "", call_sid: str = "CA1",
               reply: str | None = None, channel: str = "voice", route: str = ROUTE,
               new_sid: str | None = None) -> WebhookReceived:
    base = {"CallSid": call_sid, "From": CALLER, "To": NUMBER, "AccountSid": ACCOUNT, "CallStatus": "in-progress",
            "Direction": "inbound"} if channel == "voice" else {
            "MessageSid": "SM1", "From": CALLER, "To": NUMBER, "AccountSid": ACCOUNT, "Body": "hi"}
    n = next(_ids)
    return WebhookReceived(
        flow_sid="FWflow", revision=1, route=route, channel=channel, params=base | (params or {}),
        flow_event=flow_event, call_sid=call_sid if channel == "voice" else "",
        new_execution_sid=new_sid or f"FN{n:032x}", received_at=NOW, reply_id=reply or f"r{n}", reply_partition=2)


def message_event(body: str = "hi", **kw: Any) -> WebhookReceived:
    return call_event({"Body": body}, channel="message", **kw)


def replies(outcome: Any) -> list[Reply]:
    return [c for c in outcome.commands if isinstance(c, Reply)]


def twiml(outcome: Any) -> str:
    found = replies(outcome)
    assert len(found) == 1, found
    return found[0].twiml


def steps(outcome: Any) -> list[tuple[str, str, str]]:
    return [(s.name, s.transitioned_from, s.transitioned_to) for s in outcome.records if isinstance(s, StepRecord)]


def record(outcome: Any) -> Any:
    return outcome.records[-1]


def fire(store: Store, timer: Any, at: float | None = None) -> Any:
    return store.send(TimerFired(timer.timer_id, timer.execution_sid, timer.route, timer.token, timer.due_at,
                                 at or timer.due_at), timer.route)


XML = '<?xml version="1.0" encoding="UTF-8"?>'
EMPTY = XML + "<Response />"
