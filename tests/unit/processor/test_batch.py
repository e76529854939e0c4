"""One batch of the batched loop (batch.py): coalesced changelog rows, tombstone headers, outputs, commit positions."""

from __future__ import annotations

from services.processor.batch import Batch, Output, outputs_of
from services.processor.runner import Outcome
from services.processor.state import ExecutionState, RouteState
from shared.messages import CancelTimer, ExecutionRecord, HttpRequest, Reply, ScheduleTimer, StepRecord, decode


def _state(sid: str, reply_id: str = "") -> ExecutionState:
    return ExecutionState(sid, "FW1", 1, "FW1:+1", "+1", "+2", "x", "request", {}, 0.0, 0.0, reply_id=reply_id)


def _request(sid: str) -> HttpRequest:
    return HttpRequest(request_id=f"{sid}-r", execution_sid=sid, route="FW1:+1", token="t", purpose="http",
                       method="GET", url="http://example.com/", content_type="", body=None, form=[], query=[],
                       twilio_auth=False, accept_3xx=False, created_at=0.0)


def test_a_route_written_by_several_events_is_sent_once_with_its_last_value() -> None:
    batch = Batch()
    batch.write(0, b"a", b"1")
    batch.write(0, b"b", b"1")
    batch.write(0, b"a", b"2")
    batch.write(3, b"a", b"9")
    assert sorted((p, k, v) for p, k, v, _ in batch.changelog()) == [(0, b"a", b"2"), (0, b"b", b"1"), (3, b"a", b"9")]


def test_a_later_event_of_the_batch_reads_the_row_an_earlier_one_wrote_or_deleted() -> None:
    batch = Batch()
    assert batch.row(0, b"a") == (False, None)  # not in the batch: read the store
    batch.write(0, b"a", b"1")
    assert batch.row(0, b"a") == (True, b"1")
    batch.delete(0, b"a", applied=7)
    assert batch.row(0, b"a") == (True, None)  # deleted in this batch: the store's copy must not be read
    assert batch.row(1, b"a") == (False, None)


def test_a_tombstone_names_the_applied_offset_of_the_row_it_deletes_and_a_rewrite_drops_it() -> None:
    batch = Batch()
    batch.delete(2, b"gone", applied=41)
    batch.delete(2, b"back", applied=5)
    batch.write(2, b"back", b"{}")
    records = {k: (v, h) for _, k, v, h in batch.changelog()}
    assert records[b"gone"] == (None, [("applied", b"41")])
    assert records[b"back"] == (b"{}", [])


def test_commit_positions_are_one_past_the_last_consumed_event_of_each_partition() -> None:
    batch = Batch()
    assert batch.empty
    for offset in (10, 11, 12):
        batch.consumed(0, offset)
    batch.consumed(5, 0)  # a skipped poison event is consumed too: never re-read after the commit
    assert batch.positions == {0: 13, 5: 1}
    assert not batch.empty


def test_outputs_keep_the_agents_topics_keys_and_urgency() -> None:
    waiting = _state("FNw", reply_id="RP1")
    step = StepRecord(sid="FT1", execution_sid="FNp", flow_sid="FW1", index=0, name="incomingRequest",
                      transitioned_from="Trigger", transitioned_to="end", type="trigger", context={},
                      date_created=0.0, date_updated=0.0)
    snapshot = ExecutionRecord(sid="FNp", flow_sid="FW1", revision=1, route="FW1:+1", contact_address="+1",
                               channel_address="+2", status="ended", context={}, initiated_by="x", date_created=0.0,
                               date_updated=0.0, step_count=1)
    outcome = Outcome(RouteState(), {"FNw": waiting, "FNp": None},
                      [_request("FNw"), _request("FNp"), ScheduleTimer("T1", "FNp", "FW1:+1", "tok", 5.0),
                       CancelTimer("T2"), Reply("RP1", 3, "ok")], [step, snapshot])
    out = outputs_of(outcome)
    assert [(o.topic, o.key, o.partition, o.urgent) for o in out] == [
        ("http-requests", b"FNw", None, True),  # a webhook waits for its result
        ("http-requests", b"FNp", None, False),
        ("timers", b"T1", None, False),
        ("timers", b"T2", None, False),
        ("replies", b"RP1", 3, True),
        ("history", b"FNp", None, False),  # the sprint's step and snapshot in one message
    ]
    assert out[3].value is None  # a cancelled timer is a tombstone
    assert isinstance(decode(out[0].value or b""), HttpRequest)
    assert Output("history", b"k", b"v") == Output("history", b"k", b"v", None, False)
