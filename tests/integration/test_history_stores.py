"""Both history stores keep the same rules: snapshot ordering, replays, late steps, deletes, retention, offsets, paging.

Every test runs against a real SQLite file in a temporary folder and against a real PostgreSQL server
(``devtools/postgres_server.py``: started once for the session, a fresh database per test), with a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devtools.postgres_server import PostgresServer
from services.ingress.history_postgres import PostgresHistoryStore
from services.ingress.history_sqlite import SqliteHistoryStore
from services.ingress.history_store import HistoryStore, ListQuery
from shared.clock import FakeClock
from shared.messages import ExecutionRecord, StepRecord, encode, history_batch

FLOW = "FW" + "1" * 32
SID = "FN" + "a" * 32
RETENTION = 1000.0


def execution(sid: str = SID, status: str = "active", steps: int = 0, updated: float = 100.0,
              created: float = 100.0, flow: str = FLOW, note: str = "") -> ExecutionRecord:
    return ExecutionRecord(sid=sid, flow_sid=flow, revision=1, route=f"{flow}:+1555", contact_address="+1555",
                           channel_address="+1666", status=status, context={"note": note}, initiated_by="RQ1",
                           date_created=created, date_updated=updated, step_count=steps)


def step(execution_sid: str = SID, index: int = 0, updated: float = 100.0, name: str = "next") -> StepRecord:
    return StepRecord(sid=f"FT{execution_sid[2:10]}{index:024d}", execution_sid=execution_sid, flow_sid=FLOW,
                      index=index, name=name, transitioned_from="a", transitioned_to="b", type="set-variables",
                      context={}, date_created=updated, date_updated=updated)


async def put(store: Any, record: ExecutionRecord | StepRecord, partition: int = 0,
              offset: int = 0) -> None:
    await store.apply([(partition, offset, record.sid.encode(), encode(record))])


async def drop(store: Any, sid: str) -> None:
    await store.apply([(0, 0, sid.encode(), None)])


async def listed(store: Any, status: str | None = None) -> list[tuple[float, str]]:
    return (await store.list_executions(ListQuery(FLOW, status, 1000))).keys


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp folder: under root the server runs as another user, who must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    server = PostgresServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def fresh_database(server: PostgresServer) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.dsn(name)


async def make_store(backend: str, clock: FakeClock, tmp_path: Path, request: pytest.FixtureRequest,
                     **options: Any) -> HistoryStore:
    if backend == "sqlite":
        store: HistoryStore = SqliteHistoryStore(tmp_path / "history.sqlite3", retention=RETENTION, clock=clock,
                                                 **options)
    else:
        dsn = await fresh_database(request.getfixturevalue("postgres"))
        store = PostgresHistoryStore(dsn, "t.history", retention=RETENTION, clock=clock, expiry=RETENTION, **options)
    await store.open()
    return store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Any]:
    s = await make_store(request.param, clock, tmp_path, request, orphan_grace=60.0, deleted_memory=300.0)
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(clock: FakeClock, tmp_path: Path) -> AsyncIterator[SqliteHistoryStore]:
    s = SqliteHistoryStore(tmp_path / "history.sqlite3", retention=RETENTION, clock=clock)
    await s.open()
    yield s
    await s.close()


# -- snapshot ordering --------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second", "kept"), [
    (execution(steps=1, updated=101, note="old"), execution(steps=2, updated=102, note="new"), "new"),
    (execution(steps=2, updated=102, note="new"), execution(steps=1, updated=101, note="old"), "new"),
    (execution(steps=2, updated=102, note="a"), execution(steps=2, updated=105, note="replay"), "replay"),
    (execution(status="ended", steps=3, updated=103, note="end"), execution(steps=5, updated=110, note="active"), "end"),
    (execution(steps=3, updated=103, note="active"), execution(status="ended", steps=3, updated=103, note="end"), "end"),
], ids=["newer-replaces", "older-replay-ignored", "same-steps-later-time-wins", "ended-never-reactivates",
        "end-at-same-step-count-wins"])
async def test_a_snapshot_replaces_the_held_one_only_if_it_is_not_older(
        store: Any, first: ExecutionRecord, second: ExecutionRecord, kept: str) -> None:
    await put(store, first)
    await put(store, second)
    held = await store.execution(first.sid)
    assert held is not None and held.context == {"note": kept}


async def test_the_list_key_keeps_the_first_date_created_even_if_a_replay_disagrees(store: Any) -> None:
    await put(store, execution(created=100.0, steps=1))
    await put(store, dataclasses.replace(execution(created=100.0, steps=2), date_created=999.0))
    assert await listed(store) == [(-100.0, SID)]
    held = await store.execution(SID)
    assert held is not None and held.date_created == 100.0 and held.step_count == 2


async def test_the_flow_list_is_newest_first(store: Any) -> None:
    for n, created in enumerate((300.0, 100.0, 200.0)):
        await put(store, execution(sid=f"FN{n:032d}", created=created))
    assert [sid for _, sid in await listed(store)] == [f"FN{0:032d}", f"FN{2:032d}", f"FN{1:032d}"]


# -- steps --------------------------------------------------------------------------------------

async def test_steps_come_back_in_index_order_whatever_order_they_arrive_in(store: Any) -> None:
    await put(store, execution(steps=3))
    for index in (2, 0, 1):
        await put(store, step(index=index))
    assert [s.index for s in await store.steps_of(SID)] == [0, 1, 2]
    assert await store.known_steps(SID) == 3
    assert await store.keys_of(SID) == [step(index=i).sid for i in range(3)] + [SID]


async def test_a_step_before_its_execution_is_adopted_when_the_snapshot_arrives(
        store: Any, clock: FakeClock) -> None:
    await put(store, step(index=0))
    await put(store, execution(steps=1))
    clock.advance(100)
    assert await store.housekeep() == []
    assert [s.index for s in await store.steps_of(SID)] == [0]


async def test_an_orphan_step_is_dropped_after_the_grace_period(store: Any, clock: FakeClock) -> None:
    orphan = step(execution_sid="FN" + "b" * 32)
    await put(store, orphan)
    await store.housekeep()
    assert await store.known_steps(orphan.execution_sid) == 1
    clock.advance(61)
    await store.housekeep()
    assert await store.known_steps(orphan.execution_sid) == 0
    assert (await store.sizes())["orphans"] == 0


# -- deletes ------------------------------------------------------------------------------------

async def test_a_tombstone_forgets_the_execution_and_its_steps(store: Any) -> None:
    await put(store, execution(steps=1))
    await put(store, step())
    await drop(store, SID)
    assert await store.execution(SID) is None and await store.steps_of(SID) == []
    assert await listed(store) == []
    assert await store.known(SID)  # recently deleted: known, so reads do not wait for it


async def test_a_step_tombstone_forgets_only_that_step(store: Any) -> None:
    await put(store, execution(steps=2))
    await put(store, step(index=0))
    await put(store, step(index=1))
    await drop(store, step(index=0).sid)
    assert [s.index for s in await store.steps_of(SID)] == [1]


async def test_a_late_record_of_a_deleted_execution_is_dropped_and_tombstoned_again(store: Any) -> None:
    await put(store, execution(steps=1))
    await drop(store, SID)
    late_step, replay = step(index=1), execution(status="ended", steps=2, updated=200)
    await put(store, late_step)
    await put(store, replay)
    assert await store.execution(replay.sid) is None
    assert sorted(await store.housekeep()) == sorted([late_step.sid, replay.sid])
    assert await store.housekeep() == []


async def test_a_pending_tombstone_is_not_resent_once_its_own_tombstone_was_read(store: Any) -> None:
    await put(store, execution(steps=1))
    await drop(store, SID)
    late = step()
    await put(store, late)
    await drop(store, late.sid)  # the deleting replica's own step tombstone arrives after all
    assert await store.housekeep() == []


async def test_a_flow_tombstone_forgets_every_execution_of_the_flow_and_guards_its_late_records(
        store: Any) -> None:
    other_flow = "FW" + "2" * 32
    await put(store, execution(steps=1))
    await put(store, step())
    await put(store, execution(sid="FN" + "d" * 32, flow=other_flow))
    await drop(store, FLOW)
    assert await listed(store) == [] and await store.steps_of(SID) == []
    assert await store.execution("FN" + "d" * 32) is not None  # another flow's execution stays
    late = execution(sid="FN" + "c" * 32)  # an execution of the deleted flow published afterwards
    await put(store, late)
    assert await store.execution(late.sid) is None


async def test_the_deleted_guard_is_forgotten_after_its_memory(store: Any, clock: FakeClock) -> None:
    await put(store, execution())
    await drop(store, SID)
    clock.advance(301)
    await store.housekeep()
    await put(store, execution(steps=1, updated=500))  # long after: treated as a new record
    assert await store.execution(SID) is not None


# -- retention ----------------------------------------------------------------------------------

async def test_an_ended_execution_is_readable_until_retention_then_gone_at_once(
        store: Any, clock: FakeClock) -> None:
    await put(store, execution(status="ended", steps=1, updated=100))
    clock.advance(RETENTION - 1)
    assert await store.execution(SID) is not None and len(await listed(store, "ended")) == 1
    clock.advance(1)
    assert await store.execution(SID) is None
    assert await listed(store) == [] and await listed(store, "ended") == []


async def test_an_active_execution_is_never_expired_by_retention(store: Any, clock: FakeClock) -> None:
    await put(store, execution(status="active"))
    clock.advance(RETENTION * 10)
    await store.housekeep()
    assert await store.execution(SID) is not None


async def test_retention_deletes_expired_executions_and_their_steps_locally_without_tombstones(
        store: Any, clock: FakeClock) -> None:
    await put(store, execution(status="ended", steps=2, updated=100))
    for index in (0, 1):
        await put(store, step(index=index))
    clock.advance(RETENTION)
    assert await store.housekeep() == []  # every replica decides the same from the record's time: no messages
    assert await store.sizes() == {"executions": 0, "steps": 0, "orphans": 0, "deleted": 0, "pending": 0}


async def test_a_later_end_snapshot_moves_the_expiry(store: Any, clock: FakeClock) -> None:
    await put(store, execution(status="ended", steps=1, updated=100))
    await put(store, execution(status="ended", steps=1, updated=150))  # a replay ended it again, later
    clock.advance(RETENTION)  # 100 + retention: the first end would be due now
    await store.housekeep()
    assert await store.execution(SID) is not None
    clock.advance(50)
    await store.housekeep()
    assert (await store.sizes())["executions"] == 0


async def test_failed_tombstones_are_retried(store: Any) -> None:
    await put(store, execution())
    await drop(store, SID)
    await put(store, execution(steps=1))
    keys = await store.housekeep()
    assert keys == [SID]
    await store.retry(keys)
    assert await store.housekeep() == keys


async def test_a_later_replica_waits_its_stagger_for_pending_tombstones(store: Any,
                                                                       clock: FakeClock) -> None:
    await put(store, execution())
    await drop(store, SID)
    await put(store, execution(steps=1))
    assert await store.housekeep(delay=60) == []
    await drop(store, SID)  # replica 0's tombstone is read back
    clock.advance(60)
    assert await store.housekeep(delay=60) == []


# -- lists --------------------------------------------------------------------------------------

async def test_the_active_list_holds_only_active_executions(store: Any) -> None:
    first, second = "FN" + "1" * 32, "FN" + "2" * 32
    await put(store, execution(sid=first, created=100.0))
    await put(store, execution(sid=second, created=200.0, status="ended"))
    assert await listed(store, "active") == [(-100.0, first)]
    await put(store, execution(sid=first, created=100.0, status="ended", steps=1))
    assert await listed(store, "active") == []
    assert len(await listed(store)) == 2 and len(await listed(store, "ended")) == 2


async def test_pages_follow_the_key_forwards_and_backwards_within_date_bounds(store: Any) -> None:
    sids = [f"FN{n:032d}" for n in range(10)]
    for n, sid in enumerate(sids):
        await put(store, execution(sid=sid, created=100.0 + n))
    newest_first = sids[::-1]
    page = await store.list_executions(ListQuery(FLOW, None, 3))
    assert [s for _, s in page.keys] == newest_first[:3] and set(page.records) == set(newest_first[:3])
    after = await store.list_executions(ListQuery(FLOW, None, 3, after=page.keys[-1]))
    assert [s for _, s in after.keys] == newest_first[3:6]
    before = await store.list_executions(ListQuery(FLOW, None, 2, before=after.keys[0]))
    assert [s for _, s in before.keys] == newest_first[1:3]  # the two just before, in list order
    bounded = await store.list_executions(ListQuery(FLOW, None, 100, low=(-105.0, ""), high=(-102.0, "\uffff")))
    assert [s for _, s in bounded.keys] == [sids[5], sids[4], sids[3], sids[2]]


# -- batches and offsets ------------------------------------------------------------------------

async def test_a_history_batch_applies_its_steps_and_its_snapshot_in_one_message(store: Any) -> None:
    sid = "FN" + "b" * 32
    batch = history_batch([step(sid, 0), step(sid, 1), execution(sid, steps=2, note="batched")])
    assert len(batch) == 1
    await store.apply([(3, 41, sid.encode(), encode(batch[0]))])
    record = await store.execution(sid)
    assert record is not None and record.context == {"note": "batched"} and record.step_count == 2
    assert [s.index for s in await store.steps_of(sid)] == [0, 1]
    await drop(store, sid)  # one tombstone on the execution's key forgets the execution and its steps
    assert await store.execution(sid) is None and await store.steps_of(sid) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_offsets_applied_survive_a_reopen_so_a_restart_reads_only_the_tail(
        backend: str, clock: FakeClock, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    first = await make_store(backend, clock, tmp_path, request)
    assert await first.offsets() == {}
    await put(first, execution(), partition=2, offset=9)
    await put(first, execution(sid="FN" + "e" * 32), partition=0, offset=4)
    await put(first, execution(sid="FN" + "f" * 32), partition=2, offset=7)  # an older offset never moves it back
    await first.close()
    again = (SqliteHistoryStore(tmp_path / "history.sqlite3", retention=RETENTION, clock=clock) if backend == "sqlite"
             else PostgresHistoryStore(first.dsn, "t.history", retention=RETENTION, clock=clock))  # type: ignore[attr-defined]
    assert await again.open() == {2: 10, 0: 5}
    assert await again.execution(SID) is not None
    await again.reset()
    assert await again.execution(SID) is None and await again.sizes() == dict.fromkeys(
        ("executions", "steps", "orphans", "deleted", "pending"), 0)
    assert await again.offsets() == {}
    await again.close()


async def test_a_local_write_is_read_at_once(store: Any) -> None:
    await store.apply_local(SID.encode(), encode(execution()))
    assert [s for _, s in await listed(store)] == [SID]


async def test_concurrent_local_writes_are_each_read_at_once_when_their_write_returns(store: Any) -> None:
    """Group commit (SQLite): writes queued behind the writer share a transaction, yet each caller still
    reads its own write as soon as its ``apply_local`` returns."""
    sids = [f"FN{n:032d}" for n in range(200)]

    async def write_then_read(sid: str) -> bool:
        await store.apply_local(sid.encode(), encode(execution(sid)))
        return await store.execution(sid) is not None

    assert await asyncio.gather(*(write_then_read(sid) for sid in sids)) == [True] * len(sids)
    assert sorted(s for _, s in await listed(store)) == sids


async def test_disk_space_of_expired_executions_goes_back_to_the_file_system(
        sqlite_store: SqliteHistoryStore, clock: FakeClock) -> None:
    store = sqlite_store
    for n in range(300):
        sid = f"FN{n:032d}"
        batch = history_batch([step(sid, 0), execution(sid, status="ended", steps=1, note="x" * 2000)])
        await store.apply([(0, n, sid.encode(), encode(batch[0]))])
    pages = store._r.execute("PRAGMA page_count").fetchone()[0]
    clock.advance(RETENTION)
    await store.housekeep()
    assert await store.sizes() == dict.fromkeys(("executions", "steps", "orphans", "deleted", "pending"), 0)
    assert store._r.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert store._r.execute("PRAGMA page_count").fetchone()[0] < pages / 4


async def test_postgres_drops_day_partitions_nothing_visible_can_be_in(
        postgres: PostgresServer, clock: FakeClock) -> None:
    store = PostgresHistoryStore(await fresh_database(postgres), "t.history", retention=RETENTION, clock=clock,
                                 expiry=RETENTION)
    await store.open()
    day = 86400.0
    clock.advance(10 * day)
    old, new = "FN" + "1" * 32, "FN" + "2" * 32
    await put(store, execution(sid=old, status="ended", created=100.0, updated=200.0))
    await put(store, execution(sid=new, status="active", created=clock.now(), updated=clock.now()))
    partitions = "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1"
    assert await store.pool.fetchval(partitions, "history_executions") == 2
    await store.housekeep()
    assert await store.pool.fetchval(partitions, "history_executions") == 1  # day 0's partition is gone
    assert await store.execution(new) is not None and await store.execution(old) is None
    await store.close()
