"""Crash recovery in the state machine: an event replayed after its state was applied re-emits its outputs.

Each test plays the agent: ``send(event, offset)`` applies the outcome to the
stored row like the agent does; "lost" outputs are simply not looked at, as if
the process died before they reached Kafka.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.messages import ExecutionRecord, Reply, ScheduleTimer, StepRecord
from shared.settings import Settings

from .harness import Harness, flow_of
from .test_message_widgets import message_resource

LEAF = {"type": "set-variables", "properties": {"variables": [{"key": "done", "value": "yes"}]},
        "transitions": [{"event": "next"}]}


def two_calls() -> Any:
    return flow_of(
        {"name": "a", "type": "make-http-request", "properties": {"url": "http://svc/a"},
         "transitions": [{"event": "success", "next": "b"}, {"event": "failed"}]},
        {"name": "b", "type": "make-http-request", "properties": {"url": "http://svc/b"},
         "transitions": [{"event": "success", "next": "end"}, {"event": "failed"}]},
        {"name": "end", **LEAF})


def steps_of(outcome: Any) -> list[tuple[str, str]]:
    return [(r.name, r.transitioned_from) for r in outcome.records if isinstance(r, StepRecord)]


def test_a_replayed_start_whose_state_was_applied_resends_its_request_reply_and_steps() -> None:
    h = Harness(two_calls())
    first = h.start(offset=0)
    replay = h.start(offset=0)
    assert h.requests(replay) == h.requests(first)
    assert [c for c in replay.commands if isinstance(c, Reply)] == [c for c in first.commands if isinstance(c, Reply)]
    assert steps_of(replay) == steps_of(first) == [("incomingRequest", "Trigger")]
    assert replay.executions == {}  # the stored state is left alone
    assert replay.replayed and not first.replayed


def test_a_replayed_result_resends_the_next_request_but_never_the_request_already_answered() -> None:
    h = Harness(two_calls())
    h.start(offset=0)
    request_a = h.requests()[0]
    after_a = h.result(request_a, 200, "{}", offset=1)
    request_b = h.requests(after_a)[0]
    # Crash: offsets 0 and 1 were applied but not committed; both are delivered again.
    replay_0 = h.start(offset=0)
    replay_1 = h.result(request_a, 200, "{}", offset=1)
    assert h.requests(replay_0) == []  # a's result was applied, so a was sent
    assert steps_of(replay_0) == [("incomingRequest", "Trigger")]
    assert h.requests(replay_1) == [request_b]
    assert steps_of(replay_1) == [("success", "a")]
    h.result(request_b, 200, "{}", offset=2)
    assert h.path() == [("incomingRequest", "Trigger", "a"), ("success", "a", "b"), ("success", "b", "end"),
                        ("next", "end", "Ended")]
    assert h.record().status == "ended"


def test_a_replay_resends_the_current_execution_snapshot_not_the_old_one() -> None:
    h = Harness(two_calls())
    h.start(offset=0)
    h.result(h.requests()[0], 200, '{"x":1}', offset=1)
    replay = h.start(offset=0)
    (snapshot,) = [r for r in replay.records if isinstance(r, ExecutionRecord)]
    assert snapshot.step_count == 2 and snapshot.context["widgets"]["a"]["parsed"] == {"x": 1}


def test_the_replay_of_the_event_that_ended_an_execution_resends_its_last_steps_and_final_record() -> None:
    h = Harness(two_calls())
    h.start(offset=0)
    h.result(h.requests()[0], 200, "{}", offset=1)
    last = h.result(h.requests()[0], 200, "{}", offset=2)
    replay = h.result(h.requests(h.outcomes[1])[0], 200, "{}", offset=2)
    assert steps_of(replay) == steps_of(last) == [("success", "b"), ("next", "end")]
    (final,) = [r for r in replay.records if isinstance(r, ExecutionRecord)]
    assert (final.status, final.end_reason) == ("ended", "completed")


def test_an_ordinary_duplicate_at_a_new_offset_resends_nothing() -> None:
    h = Harness(two_calls())
    h.start(offset=0)
    request_a = h.requests()[0]
    h.result(request_a, 200, "{}", offset=1)
    duplicate = h.result(request_a, 200, "{}", offset=2)  # the http-worker repeated the request after its crash
    assert duplicate.commands == [] and duplicate.records == []


def test_outputs_below_the_committed_offset_are_forgotten() -> None:
    h = Harness(two_calls())
    h.start(offset=0)
    assert [e[0] for e in h.route.outbox] == [0]
    h.now += 1
    outcome = h.result(h.requests()[0], 200, "{}", offset=1)
    assert [e[0] for e in outcome.route.outbox] == [0, 1]
    h.committed = 2  # offsets 0 and 1 are committed: never delivered again
    later = h.result(h.requests()[0], 200, "{}", offset=5)
    assert [e[0] for e in later.route.outbox] == [5]


def test_a_send_and_wait_replay_resends_the_send_only_until_twilio_answered_it() -> None:
    settings = Settings(twilio_api_base="http://127.0.0.1:9000")
    h = Harness(flow_of({"name": "ask", "type": "send-and-wait-for-reply", "properties": {"body": "?", "timeout": "60"},
                         "transitions": [{"event": "incomingMessage", "next": "end"}, {"event": "timeout"},
                                         {"event": "deliveryFailure"}]},
                        {"name": "end", **LEAF}), settings=settings)
    h.start(offset=0)
    send = h.requests()[0]
    replay = h.start(offset=0)
    assert h.requests(replay) == [send]
    assert any(isinstance(c, ScheduleTimer) and c.token == send.token for c in replay.commands)
    h.result(send, 201, message_resource(), offset=1)
    replay = h.start(offset=0)
    assert h.requests(replay) == []  # never a second SMS once Twilio accepted the first
    assert any(isinstance(c, ScheduleTimer) and c.token == send.token for c in replay.commands)


def test_the_outbox_survives_the_row_encoding() -> None:
    from services.processor.state import decode_route_record, encode_route_record

    h = Harness(two_calls())
    h.start(offset=7)
    route, executions = decode_route_record(encode_route_record(h.route, h.executions))
    assert route.applied == 7 and route.outbox == orjson.loads(orjson.dumps(h.route.outbox))
    assert executions == h.executions


def test_without_offsets_nothing_is_stamped() -> None:
    h = Harness(two_calls())
    h.start(offset=-1)
    assert (h.route.applied, h.route.outbox) == (-1, [])
