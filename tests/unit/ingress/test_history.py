"""The history read model: snapshot ordering, replays, late steps, deletes and retention (pure, fake clock)."""

from __future__ import annotations

import dataclasses

import pytest

from services.ingress.history import HistoryStore
from shared.clock import FakeClock
from shared.messages import ExecutionRecord, StepRecord, encode

FLOW = "FW" + "1" * 32
RETENTION = 1000.0


def execution(sid: str = "FN" + "a" * 32, status: str = "active", steps: int = 0, updated: float = 100.0,
              created: float = 100.0, flow: str = FLOW, note: str = "") -> ExecutionRecord:
    return ExecutionRecord(sid=sid, flow_sid=flow, revision=1, route=f"{flow}:+1555", contact_address="+1555",
                           channel_address="+1666", status=status, context={"note": note}, initiated_by="RQ1",
                           date_created=created, date_updated=updated, step_count=steps)


def step(execution_sid: str = "FN" + "a" * 32, index: int = 0, updated: float = 100.0, name: str = "next") -> StepRecord:
    return StepRecord(sid=f"FT{execution_sid[2:10]}{index:024d}", execution_sid=execution_sid, flow_sid=FLOW,
                      index=index, name=name, transitioned_from="a", transitioned_to="b", type="set-variables",
                      context={}, date_created=updated, date_updated=updated)


def put(store: HistoryStore, record: ExecutionRecord | StepRecord) -> None:
    store.apply(record.sid.encode(), encode(record))


def drop(store: HistoryStore, sid: str) -> None:
    store.apply(sid.encode(), None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.fixture
def store(clock: FakeClock) -> HistoryStore:
    s = HistoryStore(retention=RETENTION, clock=clock, orphan_grace=60.0, deleted_memory=300.0)
    s.ready.set()
    return s


# -- snapshot ordering --------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second", "kept"), [
    (execution(steps=1, updated=101, note="old"), execution(steps=2, updated=102, note="new"), "new"),
    (execution(steps=2, updated=102, note="new"), execution(steps=1, updated=101, note="old"), "new"),
    (execution(steps=2, updated=102, note="a"), execution(steps=2, updated=105, note="replay"), "replay"),
    (execution(status="ended", steps=3, updated=103, note="end"), execution(steps=5, updated=110, note="active"), "end"),
    (execution(steps=3, updated=103, note="active"), execution(status="ended", steps=3, updated=103, note="end"), "end"),
], ids=["newer-replaces", "older-replay-ignored", "same-steps-later-time-wins", "ended-never-reactivates",
        "end-at-same-step-count-wins"])
def test_a_snapshot_replaces_the_held_one_only_if_it_is_not_older(
        store: HistoryStore, first: ExecutionRecord, second: ExecutionRecord, kept: str) -> None:
    put(store, first)
    put(store, second)
    held = store.execution(first.sid)
    assert held is not None and held.context == {"note": kept}


def test_the_index_key_keeps_the_first_date_created_even_if_a_replay_disagrees(store: HistoryStore) -> None:
    put(store, execution(created=100.0, steps=1))
    put(store, dataclasses.replace(execution(created=100.0, steps=2), date_created=999.0))
    assert list(store.execution_index(FLOW)) == [(-100.0, "FN" + "a" * 32)]


def test_the_flow_index_is_newest_first(store: HistoryStore) -> None:
    for n, created in enumerate((300.0, 100.0, 200.0)):
        put(store, execution(sid=f"FN{n:032d}", created=created))
    assert [sid for _, sid in store.execution_index(FLOW)] == [f"FN{0:032d}", f"FN{2:032d}", f"FN{1:032d}"]


# -- steps --------------------------------------------------------------------------------------

def test_steps_come_back_in_index_order_whatever_order_they_arrive_in(store: HistoryStore) -> None:
    put(store, execution(steps=3))
    for index in (2, 0, 1):
        put(store, step(index=index))
    assert [s.index for s in store.steps_of("FN" + "a" * 32)] == [0, 1, 2]


def test_a_step_before_its_execution_is_adopted_when_the_snapshot_arrives(store: HistoryStore, clock: FakeClock) -> None:
    put(store, step(index=0))
    put(store, execution(steps=1))
    clock.advance(10_000)
    assert store.due_tombstones() == []  # no orphan left to clean up
    assert [s.index for s in store.steps_of("FN" + "a" * 32)] == [0]


def test_an_orphan_step_is_tombstoned_after_the_grace_period(store: HistoryStore, clock: FakeClock) -> None:
    orphan = step(execution_sid="FN" + "b" * 32)
    put(store, orphan)
    assert store.due_tombstones() == []
    clock.advance(61)
    assert store.due_tombstones() == [orphan.sid]


# -- deletes ------------------------------------------------------------------------------------

def test_a_tombstone_forgets_the_execution_and_its_steps(store: HistoryStore) -> None:
    put(store, execution(steps=1))
    put(store, step())
    drop(store, "FN" + "a" * 32)
    assert store.execution("FN" + "a" * 32) is None and store.steps_of("FN" + "a" * 32) == []
    assert list(store.execution_index(FLOW)) == []


def test_a_late_record_of_a_deleted_execution_is_dropped_and_tombstoned_again(store: HistoryStore) -> None:
    put(store, execution(steps=1))
    drop(store, "FN" + "a" * 32)
    late_step, replay = step(index=1), execution(status="ended", steps=2, updated=200)
    put(store, late_step)
    put(store, replay)
    assert store.execution(replay.sid) is None
    assert sorted(store.due_tombstones()) == sorted([late_step.sid, replay.sid])
    assert store.due_tombstones() == []


def test_a_pending_tombstone_is_not_resent_once_its_own_tombstone_was_read(store: HistoryStore) -> None:
    put(store, execution(steps=1))
    drop(store, "FN" + "a" * 32)
    late = step()
    put(store, late)
    drop(store, late.sid)  # the deleting replica's own step tombstone arrives after all
    assert store.due_tombstones() == []


def test_forgetting_a_flow_returns_steps_before_executions_and_guards_its_late_records(store: HistoryStore) -> None:
    put(store, execution(steps=1))
    first_step = step()
    put(store, first_step)
    keys = store.forget_flow(FLOW)
    assert keys == [first_step.sid, "FN" + "a" * 32]
    other = execution(sid="FN" + "c" * 32)  # an execution of the deleted flow this replica had not seen
    put(store, other)
    assert store.execution(other.sid) is None and store.due_tombstones() == [other.sid]


def test_the_deleted_guard_is_forgotten_after_its_memory(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution())
    drop(store, "FN" + "a" * 32)
    clock.advance(301)
    store.due_tombstones()
    put(store, execution(steps=1, updated=500))  # long after: treated as a new record
    assert store.execution("FN" + "a" * 32) is not None


# -- retention ----------------------------------------------------------------------------------

def test_an_ended_execution_is_readable_until_retention_then_gone_at_once(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution(status="ended", steps=1, updated=100))
    clock.advance(RETENTION - 1)
    assert store.execution("FN" + "a" * 32) is not None
    clock.advance(1)
    assert store.execution("FN" + "a" * 32) is None
    assert store.execution_status("FN" + "a" * 32) is None


def test_an_active_execution_is_never_expired_by_retention(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution(status="active"))
    clock.advance(RETENTION * 10)
    assert store.execution("FN" + "a" * 32) is not None and store.due_tombstones() == []


def test_expired_executions_are_tombstoned_steps_first(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution(status="ended", steps=2, updated=100))
    steps = [step(index=0), step(index=1)]
    for s in steps:
        put(store, s)
    clock.advance(RETENTION)
    keys = store.due_tombstones()
    assert keys[-1] == "FN" + "a" * 32 and sorted(keys[:-1]) == sorted(s.sid for s in steps)
    assert store.due_tombstones() == []  # handed out once


def test_a_later_replica_waits_its_stagger_and_finds_the_work_done(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution(status="ended", updated=100))
    clock.advance(RETENTION)
    assert store.due_tombstones(delay=60) == []
    drop(store, "FN" + "a" * 32)  # replica 0's tombstone is read back
    clock.advance(60)
    assert store.due_tombstones(delay=60) == []


def test_a_later_end_snapshot_moves_the_expiry(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution(status="ended", steps=1, updated=100))
    put(store, execution(status="ended", steps=1, updated=150))  # a replay ended it again, later
    clock.advance(RETENTION)  # 100 + retention: the first end would be due now
    assert store.due_tombstones() == []
    assert store.execution("FN" + "a" * 32) is not None
    clock.advance(50)
    assert store.due_tombstones() == ["FN" + "a" * 32]


def test_failed_tombstones_are_retried(store: HistoryStore, clock: FakeClock) -> None:
    put(store, execution(status="ended", updated=100))
    clock.advance(RETENTION)
    keys = store.due_tombstones()
    store.retry(keys)
    assert store.due_tombstones() == keys


def test_memory_holds_records_as_compact_bytes_not_decoded_objects(store: HistoryStore) -> None:
    put(store, execution(steps=1))
    entry = store._executions["FN" + "a" * 32]
    assert isinstance(entry.raw, bytes)
    assert store.sizes() == {"executions": 1, "steps": 0, "orphans": 0, "deleted": 0, "pending": 0}


def test_the_active_index_holds_only_active_executions(store: HistoryStore) -> None:
    first, second = "FN" + "1" * 32, "FN" + "2" * 32
    put(store, execution(sid=first, created=100.0))
    put(store, execution(sid=second, created=200.0, status="ended"))
    assert list(store.execution_index(FLOW, active_only=True)) == [(-100.0, first)]
    put(store, execution(sid=first, created=100.0, status="ended", steps=1))
    assert list(store.execution_index(FLOW, active_only=True)) == []
    assert len(store.execution_index(FLOW)) == 2
    put(store, execution(sid="FN" + "3" * 32, created=300.0))
    drop(store, "FN" + "3" * 32)
    assert list(store.execution_index(FLOW, active_only=True)) == []


def test_a_history_batch_applies_its_steps_and_its_snapshot_in_one_message(store: HistoryStore) -> None:
    from shared.messages import history_batch

    sid = "FN" + "b" * 32
    batch = history_batch([step(sid, 0), step(sid, 1), execution(sid, steps=2, note="batched")])
    assert len(batch) == 1
    store.apply(sid.encode(), encode(batch[0]))
    record = store.execution(sid)
    assert record is not None and record.context == {"note": "batched"} and record.step_count == 2
    assert [s.index for s in store.steps_of(sid)] == [0, 1]
    drop(store, sid)  # one tombstone on the execution's key forgets the execution and its steps
    assert store.execution(sid) is None and store.steps_of(sid) == []


def test_a_batch_of_steps_without_a_snapshot_is_kept_until_its_execution_arrives(store: HistoryStore) -> None:
    from shared.messages import history_batch

    sid = "FN" + "c" * 32
    (batch,) = history_batch([step(sid, 0)])
    assert batch.execution is None and batch.execution_sid == sid
    store.apply(sid.encode(), encode(batch))
    put(store, execution(sid, steps=1))
    assert [s.index for s in store.steps_of(sid)] == [0]
