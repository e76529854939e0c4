"""History batches become Studio's Event Streams events (CloudEvents), in the order things happened."""

from __future__ import annotations

from typing import Any

import pytest

from services.event_streams.cloudevents import (
    EXECUTION_ENDED,
    EXECUTION_STARTED,
    STEP_ENDED,
    events_of,
    events_of_record,
)
from shared.messages import ExecutionRecord, HistoryBatch, encode, history_batch
from tests.unit.processor.harness import Harness, flow_of

ACCOUNT, BASE = "AC" + "a" * 32, "https://sb.example.com"


def run_to_end() -> Harness:
    h = Harness(flow_of({"name": "set", "type": "set-variables", "transitions": [{"event": "next"}],
                         "properties": {"variables": [{"key": "x", "value": "1"}]}}))
    h.start()
    return h


def batches(h: Harness) -> list[HistoryBatch]:
    return [b for outcome in h.outcomes for b in history_batch(outcome.records)]


def test_an_execution_run_in_one_sprint_is_started_two_steps_and_ended() -> None:
    h = run_to_end()
    (batch,) = batches(h)
    events = events_of(batch, ACCOUNT, BASE)
    assert [e["type"] for e in events] == [EXECUTION_STARTED, STEP_ENDED, STEP_ENDED, EXECUTION_ENDED]
    started, trigger, step, ended = events
    execution = h.record()
    assert {k: started[k] for k in ("specversion", "datacontenttype", "dataschema", "source")} == {
        "specversion": "1.0", "datacontenttype": "application/json",
        "dataschema": "https://events-schemas.twilio.com/Studio.FlowExecutionEvent/1",
        "source": f"{BASE}/v2/Flows/{execution.flow_sid}/Executions/{execution.sid}"}
    assert started["data"] == {
        "execution_sid": execution.sid, "account_sid": ACCOUNT, "flow_sid": execution.flow_sid,
        "contact_channel_address": execution.contact_address, "status": "active",
        "date_created": "2023-11-14T22:13:20.000Z", "date_updated": "2023-11-14T22:13:20.000Z",
        "started_by": execution.initiated_by, "flow_revision": 1}
    assert ended["data"]["status"] == "ended" and ended["data"]["ended_reason"] == "FLOW_END"
    assert step["dataschema"] == "https://events-schemas.twilio.com/Studio.FlowStepEvent/1"
    assert {k: step["data"][k] for k in ("name", "transitioned_from", "transitioned_to", "widget_type")} == {
        "name": "next", "transitioned_from": "set", "transitioned_to": "Ended", "widget_type": "set-variables"}
    assert trigger["data"]["name"] == "incomingRequest" and "context" not in trigger["data"]
    assert len({e["id"] for e in events}) == 4


def test_the_same_batch_read_twice_gives_the_same_event_ids() -> None:
    (batch,) = batches(run_to_end())
    assert [e["id"] for e in events_of(batch, ACCOUNT, BASE)] == [e["id"] for e in events_of(batch, ACCOUNT, BASE)]


@pytest.mark.parametrize("reason,expected", [("completed", "FLOW_END"), ("ended", "ENDED"), ("expired", "EXPIRED"),
                                             ("loop_limit", "LOOP_LIMIT")])
def test_the_ended_reason(reason: str, expected: str) -> None:
    record = ExecutionRecord("FN1", "FW1", 3, "r", "+1", "+2", "ended", {}, "RQ1", 0.0, 1.0, 2, reason)
    (ended,) = events_of_record(encode(record), ACCOUNT, BASE)
    assert ended["type"] == EXECUTION_ENDED and ended["data"]["ended_reason"] == expected
    assert ended["data"]["flow_revision"] == 3


def test_a_waiting_execution_starts_without_ending_and_tombstones_give_nothing() -> None:
    record: dict[str, Any] = {"sid": "FN1", "flow_sid": "FW1", "revision": 1, "route": "r", "contact_address": "+1",
                              "channel_address": "+2", "status": "active", "context": {}, "initiated_by": "CA1",
                              "date_created": 0.0, "date_updated": 0.0, "step_count": 1, "end_reason": ""}
    step = {"sid": "FT1", "execution_sid": "FN1", "flow_sid": "FW1", "index": 0, "name": "incomingCall",
            "transitioned_from": "Trigger", "transitioned_to": "hello", "type": "trigger", "context": {},
            "date_created": 0.0, "date_updated": 0.0}
    events = events_of_record(encode(HistoryBatch(record, [step])), ACCOUNT, BASE)
    assert [e["type"] for e in events] == [EXECUTION_STARTED, STEP_ENDED]
    assert events_of_record(None, ACCOUNT, BASE) == [] and events_of_record(b"junk", ACCOUNT, BASE) == []
