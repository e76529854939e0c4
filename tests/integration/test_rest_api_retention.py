"""History retention and restarts over a real broker: two ingress replicas' stores on one history topic.

The replicas run in this process (their SQLite ``HistoryStore`` + ``follow_history`` + ``run_janitor``,
exactly as the ingress wires them) on topics of their own (a fresh prefix), with fake clocks so retention
can pass in a moment. The cluster's broker is shared; nothing of the other tests is touched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from devtools.cluster import Cluster
from services.ingress.history import follow_history, run_janitor
from services.ingress.history_sqlite import SqliteHistoryStore
from shared.clock import FakeClock
from shared.kafka import make_producer, make_reader
from shared.messages import ExecutionRecord, StepRecord, encode
from shared.settings import Settings
from shared.topics import create_topics

RETENTION = 3600.0
STAGGER = 60.0
FLOW = "FW" + "7" * 32


def execution(sid: str, status: str, updated: float) -> ExecutionRecord:
    return ExecutionRecord(sid=sid, flow_sid=FLOW, revision=1, route=f"{FLOW}:+1555", contact_address="+1555",
                           channel_address="+1666", status=status, context={}, initiated_by="RQ1",
                           date_created=updated - 5, date_updated=updated, step_count=2)


def step(execution_sid: str, index: int) -> StepRecord:
    return StepRecord(sid=f"FT{index:02d}{execution_sid[4:]}", execution_sid=execution_sid, flow_sid=FLOW, index=index,
                      name="next", transitioned_from="a", transitioned_to="b", type="set-variables", context={},
                      date_created=0.0, date_updated=0.0)


@dataclass
class Replica:
    store: SqliteHistoryStore
    clock: FakeClock
    published: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@pytest.fixture
async def topics(cluster: Cluster) -> AsyncIterator[tuple[Settings, AIOKafkaProducer]]:
    settings = Settings.from_env({**cluster.env, "SWITCHBOARD_TOPIC_PREFIX": f"it-retention-{uuid.uuid4().hex[:8]}.",
                                  "SWITCHBOARD_EVENT_PARTITIONS": "3"})
    await asyncio.to_thread(create_topics, settings)
    producer = make_producer(settings, "retention-test")
    await producer.start()
    yield settings, producer
    await producer.stop()


async def start_replica(settings: Settings, producer: AIOKafkaProducer, instance: int, now: float,
                        path: Path) -> Replica:
    clock = FakeClock(start=now)
    replica = Replica(SqliteHistoryStore(path, retention=RETENTION, clock=clock), clock)
    reader = make_reader(settings, f"retention-{instance}")
    await reader.start()
    stored = await replica.store.open()

    async def tombstone(key: str) -> None:
        replica.published.append(key)
        await producer.send_and_wait(settings.topic("history"), None, key=key.encode())

    replica.tasks = [asyncio.create_task(follow_history(reader, replica.store, settings.topic("history"), stored)),
                     asyncio.create_task(run_janitor(replica.store, tombstone, instance, interval=0.05, stagger=STAGGER))]
    replica.tasks.append(asyncio.create_task(_stop_later(reader)))
    await asyncio.wait_for(replica.store.ready.wait(), 30)
    return replica


async def _stop_later(reader: object) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await reader.stop()  # type: ignore[attr-defined]


async def stop(replica: Replica) -> None:
    for task in replica.tasks:
        task.cancel()
    await asyncio.gather(*replica.tasks, return_exceptions=True)
    await replica.store.close()


async def until(predicate: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def holding(replica: Replica, **expected: int) -> object:
    async def check() -> bool:
        sizes = await replica.store.sizes()
        return all(sizes[name] == n for name, n in expected.items())
    return check


async def test_ended_executions_are_forgotten_after_retention_by_every_replica_without_messages_and_stay_gone(
        topics: tuple[Settings, AIOKafkaProducer], tmp_path: Path) -> None:
    settings, producer = topics
    ended, active = "FN" + uuid.uuid4().hex, "FN" + uuid.uuid4().hex
    t0 = 1_700_000_000.0
    records: list[ExecutionRecord | StepRecord] = [step(ended, 0), step(ended, 1), execution(ended, "ended", t0),
                                                   step(active, 0), execution(active, "active", t0)]
    for record in records:
        await producer.send_and_wait(settings.topic("history"), encode(record), key=record.sid.encode())

    replicas = [await start_replica(settings, producer, n, now=t0 + 10, path=tmp_path / f"r{n}.sqlite3")
                for n in (0, 1)]
    for r in replicas:
        await until(holding(r, executions=2, steps=3))
        assert await r.store.execution(ended) is not None

    for r in replicas:
        r.clock.advance(RETENTION)  # the ended execution is past retention now
    for r in replicas:
        assert await r.store.execution(ended) is None, "reads forget it at once"
        assert [s.index for s in await r.store.steps_of(active)] == [0]
    for r in replicas:
        await until(holding(r, executions=1, steps=1, orphans=0, pending=0))  # the janitor deleted it here
    await asyncio.sleep(0.3)
    assert [r.published for r in replicas] == [[], []], "retention needs no tombstones: each replica decides alike"

    # A restart resumes from the offsets its store holds: nothing old is read again, the expired stays gone.
    await stop(replicas[0])
    restarted = await start_replica(settings, producer, 0, now=t0 + 10 + RETENTION, path=tmp_path / "r0.sqlite3")
    assert await restarted.store.execution(ended) is None and await restarted.store.execution(active) is not None
    # A replica that lost its disk rebuilds from the topic and applies retention to what it reads.
    await stop(replicas[1])
    rebuilt = await start_replica(settings, producer, 1, now=t0 + 10 + RETENTION, path=tmp_path / "new.sqlite3")
    assert await rebuilt.store.execution(ended) is None and await rebuilt.store.execution(active) is not None
    await until(holding(rebuilt, executions=1, steps=1))
    for r in (restarted, rebuilt):
        await stop(r)


async def test_a_delete_through_one_replica_reaches_the_other_and_a_late_snapshot_is_tombstoned_again_once(
        topics: tuple[Settings, AIOKafkaProducer], tmp_path: Path) -> None:
    settings, producer = topics
    sid = "FN" + uuid.uuid4().hex
    t0 = 1_700_000_000.0
    await producer.send_and_wait(settings.topic("history"), encode(execution(sid, "active", t0)), key=sid.encode())
    replicas = [await start_replica(settings, producer, n, now=t0 + 10, path=tmp_path / f"d{n}.sqlite3")
                for n in (0, 1)]
    await producer.send_and_wait(settings.topic("history"), None, key=sid.encode())  # replica 0 deleted it
    for r in replicas:
        await until(holding(r, executions=0, deleted=1))
    # The processor's last snapshot (the end it was asked for) arrives after the delete.
    await producer.send_and_wait(settings.topic("history"), encode(execution(sid, "ended", t0 + 1)), key=sid.encode())
    await until(lambda: _true_after(lambda: replicas[0].published == [sid]))
    replicas[1].clock.advance(STAGGER + 1)  # replica 1's turn comes after replica 0's tombstone was read back
    await asyncio.sleep(0.5)
    assert replicas[1].published == [] and all([await r.store.execution(sid) is None for r in replicas])
    for r in replicas:
        await stop(r)


async def _true_after(check: object) -> bool:
    return bool(check())  # type: ignore[operator]
