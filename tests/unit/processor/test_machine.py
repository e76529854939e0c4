"""The pure state machine, driven event by event without Kafka."""

from __future__ import annotations

import json
from pathlib import Path

from services.processor.machine import handle
from services.processor.sprint import Env
from services.processor.state import ExecutionState, RouteState
from shared.flow import parse_definition
from shared.messages import (
    CancelTimer,
    EndRequested,
    HttpRequest,
    HttpResult,
    Reply,
    ScheduleTimer,
    StartExecution,
    StepRecord,
    TimerFired,
)
from shared.settings import Settings

FLOW = parse_definition(json.loads((Path(__file__).parents[2] / "fixtures" / "skeleton_flow.json").read_text()))
NOW = 1_700_000_000.0


def env(now: float = NOW, flow=FLOW) -> Env:
    return Env(now=now, settings=Settings(), flows=lambda sid, rev: flow if sid == "FWflow" else None)


class Store(dict):
    """Stands in for the processor's tables: applies an outcome like the agent does."""

    route = RouteState()

    def apply(self, outcome):
        self.route = outcome.route
        for sid, state in outcome.executions.items():
            if state is None:
                self.pop(sid, None)
            else:
                self[sid] = state
        return outcome


def start(store: Store, sid: str = "FNexec1", data: dict | None = None, reply: str = "r1"):
    event = StartExecution(execution_sid=sid, flow_sid="FWflow", revision=1, route="FWflow:+15550001",
                           contact_address="+15550001", channel_address="+15559999",
                           flow_data=data or {"name": "Ann", "base_url": "http://svc"}, created_at=NOW,
                           reply_id=reply, reply_partition=3)
    return store.apply(handle(event, store.route, store, env()))


def result(req: HttpRequest, status: int = 200, body: str = "", ok: bool | None = None, now: float = NOW + 1):
    return HttpResult(request_id=req.request_id, execution_sid=req.execution_sid, route=req.route, token=req.token,
                      ok=(200 <= status < 300) if ok is None else ok, status_code=status,
                      content_type="application/json", body=body, error="", outcome=f"{status // 100}xx", elapsed=0.01)


def test_a_rest_start_runs_until_the_http_request_and_replies_with_the_active_execution():
    store = Store()
    out = start(store)
    requests = [c for c in out.commands if isinstance(c, HttpRequest)]
    assert len(requests) == 1
    assert requests[0].url == "http://svc/person"
    assert requests[0].query == [["greeting", "Hello Ann"]]
    replies = [c for c in out.commands if isinstance(c, Reply)]
    assert replies[0].status == "ok" and replies[0].partition == 3
    assert replies[0].execution["status"] == "active"
    # Waiting only on an HTTP call (bounded by the worker) does not arm the 30-day expiry timer.
    assert not any(isinstance(c, ScheduleTimer) for c in out.commands)
    steps = [r for r in out.records if isinstance(r, StepRecord)]
    assert [(s.name, s.transitioned_from, s.transitioned_to) for s in steps] == [
        ("incomingRequest", "Trigger", "set_greeting"), ("next", "set_greeting", "lookup")]


def test_a_2xx_json_object_takes_success_and_the_split_reads_parsed():
    store = Store()
    out = start(store)
    req = next(c for c in out.commands if isinstance(c, HttpRequest))
    out = store.apply(handle(result(req, 200, '{"message":"Hi","person":{"name":"Bob","age":40}}'), store.route, store, env(NOW + 1)))
    steps = [r for r in out.records if isinstance(r, StepRecord)]
    assert [(s.name, s.transitioned_from, s.transitioned_to) for s in steps] == [
        ("success", "lookup", "check"), ("match", "check", "mark_bob"), ("next", "mark_bob", "Ended")]
    record = out.records[-1]
    assert record.status == "ended"
    assert record.context["flow"]["variables"]["result"] == "bob 40"
    assert record.context["widgets"]["lookup"]["parsed"]["person"]["name"] == "Bob"
    assert "FNexec1" not in store
    assert not any(isinstance(c, CancelTimer) for c in out.commands)  # no expiry timer was armed


def test_a_4xx_takes_the_failed_transition():
    store = Store()
    req = next(c for c in start(store).commands if isinstance(c, HttpRequest))
    out = store.apply(handle(result(req, 404, "nope"), store.route, store, env()))
    assert out.records[-1].context["flow"]["variables"]["result"] == "failed 404"


def test_a_result_for_an_earlier_wait_is_ignored():
    store = Store()
    req = next(c for c in start(store).commands if isinstance(c, HttpRequest))
    stale = HttpResult(request_id="x", execution_sid=req.execution_sid, route=req.route, token="99", ok=True,
                       status_code=200, content_type="", body="", error="", outcome="2xx", elapsed=0)
    out = store.apply(handle(stale, store.route, store, env()))
    assert out.commands == [] and out.records == []
    assert store["FNexec1"].wait is not None


def test_a_duplicate_result_after_the_execution_ended_is_ignored():
    store = Store()
    req = next(c for c in start(store).commands if isinstance(c, HttpRequest))
    store.apply(handle(result(req), store.route, store, env()))
    out = store.apply(handle(result(req), store.route, store, env()))
    assert out.records == [] and out.commands == []


def test_a_second_rest_start_for_the_same_contact_gets_20409():
    store = Store()
    start(store)
    out = start(store, sid="FNexec2", reply="r2")
    reply = out.commands[0]
    assert isinstance(reply, Reply) and reply.status == "conflict" and reply.error_code == 20409


def test_a_replayed_start_does_not_run_the_execution_twice():
    store = Store()
    start(store)
    out = start(store)
    assert out.records == []
    assert [c.status for c in out.commands if isinstance(c, Reply)] == ["ok"]


def test_ending_over_the_api_cancels_timers_and_ends():
    store = Store()
    start(store)
    out = store.apply(handle(EndRequested("FNexec1", "FWflow:+15550001", NOW, reply_id="e1", reply_partition=0),
                             store.route, store, env()))
    assert out.records[-1].status == "ended" and out.records[-1].end_reason == "ended"
    assert store.route.active == []


def test_the_expiry_timer_ends_an_active_execution():
    store = Store()
    start(store)
    fired = TimerFired("t", "FNexec1", "FWflow:+15550001", "expiry", NOW, NOW)
    out = store.apply(handle(fired, store.route, store, env()))
    assert out.records[-1].end_reason == "expired"


def test_execution_state_round_trips_through_bytes():
    store = Store()
    start(store)
    state = store["FNexec1"]
    assert ExecutionState.from_bytes(state.to_bytes()) == state


def test_a_bug_in_a_widget_ends_that_execution_with_81002_instead_of_crashing_the_processor(monkeypatch):
    from services.processor import runner

    def broken(sprint, widget):
        raise KeyError("boom")

    monkeypatch.setitem(runner.ENTER, "set-variables", broken)
    store = Store()
    out = start(store)
    record = out.records[-1]
    assert record.status == "ended" and record.end_reason == "failed"
    assert record.context["error"]["code"] == 81002
    assert "internal error in widget 'set_greeting'" in record.context["error"]["message"]
    assert [c.status for c in out.commands if isinstance(c, Reply)] == ["ok"]
