"""A route's row goes once nothing is active and every event it applied is committed (route_sweep.py).

The state machine side is played by the harness (as in test_replay.py); "deleting the row" is what
the agent does when ``droppable`` says so: the next event of that route finds an empty row.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from services.processor.faust_fixes import ConfirmedCommits
from services.processor.route_sweep import SweepCandidates, droppable, idle, idle_applied
from services.processor.state import RouteState, encode_route_record
from shared.messages import EndRequested, Reply

from .harness import ROUTE, Harness, flow_of
from .test_replay import LEAF, two_calls

TP = namedtuple("TP", "topic partition")
WAIT = {"name": "wait", "type": "send-and-wait-for-reply",
        "properties": {"body": "hi?", "from": "+15559990000", "timeout": "3600"},
        "transitions": [{"event": "incomingMessage", "next": "end"}, {"event": "timeout"},
                        {"event": "deliveryFailure"}]}


def ended_route(h: Harness) -> None:
    h.start(offset=0)
    request = h.requests()[0]
    after = h.result(request, 200, "{}", offset=1)
    h.result(h.requests(after)[0], 200, "{}", offset=2)
    assert h.executions == {} and h.route.active == []


# -- when a row may go -------------------------------------------------------------------------


def test_a_route_whose_executions_ended_is_droppable_once_its_last_event_is_committed() -> None:
    h = Harness(two_calls())
    ended_route(h)
    assert h.route.applied == 2 and h.route.outbox  # the final records wait for the commit
    assert not droppable(h.route, h.executions, committed=2)  # offset 2 may still be delivered again
    assert not droppable(h.route, h.executions, committed=-1)  # nothing known to be committed
    assert droppable(h.route, h.executions, committed=3)


def test_a_route_with_an_active_execution_is_never_droppable() -> None:
    h = Harness(two_calls())
    h.start(offset=0)
    assert not idle(h.route, h.executions)
    assert not droppable(h.route, h.executions, committed=1_000)


def test_a_dropped_route_starts_a_new_execution_as_if_the_contact_was_new() -> None:
    h = Harness(two_calls())
    ended_route(h)
    h.route, h.committed = RouteState(), 3  # the agent deleted the row
    outcome = h.start(sid="FN" + "9" * 32, offset=3)
    assert [c.status for c in outcome.commands if isinstance(c, Reply)] == ["ok"]
    assert h.route.active == ["FN" + "9" * 32]


def test_end_requested_for_an_execution_whose_route_was_dropped_answers_not_found_and_changes_nothing() -> None:
    # The ingress sends EndRequested only for an execution its history shows active, and answers from
    # history afterwards whatever the reply says (routes_executions._end): the ended snapshot wins.
    h = Harness(two_calls())
    ended_route(h)
    sid = "FN" + "1" * 32
    kept = h.send(EndRequested(sid, ROUTE, h.now, reply_id="e1", reply_partition=0), offset=3)
    assert [c.status for c in kept.commands if isinstance(c, Reply)] == ["ok"]  # still in ``recent``
    h.route = RouteState()
    dropped = h.send(EndRequested(sid, ROUTE, h.now, reply_id="e2", reply_partition=0), offset=4)
    assert [c.status for c in dropped.commands if isinstance(c, Reply)] == ["not_found"]
    assert dropped.records == [] and h.executions == {}


def test_a_route_waiting_for_a_reply_keeps_its_row() -> None:
    h = Harness(flow_of(WAIT, {"name": "end", **LEAF}))
    h.start(offset=0)
    assert h.route.active and not droppable(h.route, h.executions, committed=10)


# -- recovery: idle rows read back from the changelog ---------------------------------------------


def test_idle_applied_reads_the_offset_of_an_idle_row_without_decoding_busy_ones() -> None:
    h = Harness(two_calls())
    ended_route(h)
    assert idle_applied(encode_route_record(h.route, h.executions)) == 2
    busy = Harness(two_calls())
    busy.start(offset=7)
    assert idle_applied(encode_route_record(busy.route, busy.executions)) is None
    assert idle_applied(None) is None  # a tombstone
    assert idle_applied(b"") is None


# -- candidates ----------------------------------------------------------------------------------


def test_candidates_are_due_once_the_committed_offset_passes_them_oldest_first() -> None:
    c = SweepCandidates()
    c.note(0, b"a", 5)
    c.note(0, b"b", 6)
    c.note(1, b"x", 1)
    assert c.due(0, committed=5) == []
    assert c.due(0, committed=6) == [b"a"]
    assert c.due(0, committed=6) == []  # taken once
    assert c.due(0, committed=100) == [b"b"]
    assert c.due(1, committed=2) == [b"x"] and len(c) == 0


def test_a_key_noted_again_waits_for_its_newer_offset() -> None:
    c = SweepCandidates()
    c.note(0, b"a", 5)
    c.note(0, b"b", 6)
    c.note(0, b"a", 9)  # the row was re-used and is idle again
    assert c.due(0, committed=7) == [b"b"]
    assert c.due(0, committed=10) == [b"a"]


def test_an_older_figure_never_replaces_a_newer_one() -> None:
    # e.g. the scan of local rows at start read a row before the agent stored it again
    c = SweepCandidates()
    c.note(0, b"a", 9)
    c.note(0, b"a", 5)
    assert c.due(0, committed=8) == []
    assert c.due(0, committed=10) == [b"a"]


def test_forgotten_keys_and_unknown_commits_give_nothing() -> None:
    c = SweepCandidates()
    c.note(0, b"a", 5)
    assert c.due(0, committed=-1) == []
    c.forget(0, b"a")
    c.forget(3, b"zz")
    assert c.due(0, committed=100) == [] and len(c) == 0


def test_due_takes_at_most_limit_keys_per_call() -> None:
    c = SweepCandidates()
    for i in range(10):
        c.note(0, bytes([i]), i)
    assert len(c.due(0, committed=100, limit=4)) == 4
    assert len(c) == 6


# -- confirmed commits ---------------------------------------------------------------------------


def test_confirmed_commits_only_move_forward_until_an_assignment_says_otherwise() -> None:
    confirmed = ConfirmedCommits()
    tp: Any = TP("events", 3)
    assert confirmed.get(tp) == -1
    confirmed.confirm({tp: 10})
    confirmed.confirm({tp: 8})  # a late answer to an older commit
    assert confirmed.get(tp) == 10
    confirmed.reset({tp: 4})  # the broker's figure at a new assignment wins
    assert confirmed.get(tp) == 4
    confirmed.reset({tp: None})
    assert confirmed.get(tp) == -1


class _FakeConsumer:
    """faust's consumer as far as track_confirmed_commits touches it."""

    def __init__(self, accept: bool, assigned: set[Any]) -> None:
        self.accept, self.assigned = accept, assigned
        self._thread = self

    async def _commit(self, offsets: Any) -> bool:
        return self.accept

    def assignment(self) -> set[Any]:
        return self.assigned

    async def seek_to_committed(self) -> Any:
        return {TP("events", 0): 42, TP("events", 1): 0}


async def test_only_commits_the_broker_accepted_are_confirmed_and_an_assignment_resets_them() -> None:
    from types import SimpleNamespace

    from services.processor.faust_fixes import track_confirmed_commits

    tp0, tp1 = TP("events", 0), TP("events", 1)
    consumer = _FakeConsumer(accept=False, assigned={tp0})
    confirmed = track_confirmed_commits(SimpleNamespace(consumer=consumer))  # type: ignore[arg-type]
    assert await consumer._commit({tp0: 50}) is False
    assert confirmed.get(tp0) == -1  # refused (e.g. the group rebalanced): not committed
    consumer.accept = True
    await consumer._commit({tp0: 60, tp1: 70})
    assert (confirmed.get(tp0), confirmed.get(tp1)) == (60, -1)  # tp1 is no longer ours
    await consumer._thread.seek_to_committed()
    assert (confirmed.get(tp0), confirmed.get(tp1)) == (42, -1)
