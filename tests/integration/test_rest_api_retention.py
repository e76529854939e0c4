"""History retention over a real broker: two ingress replicas' read models and janitors on one history topic.

The replicas run in this process (their ``HistoryStore`` + ``follow_history`` +
``run_janitor``, exactly as the ingress wires them) on topics of their own
(a fresh prefix), with fake clocks so retention can pass in a moment. The
cluster's broker is shared; nothing of the other tests is touched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaProducer

from devtools.cluster import Cluster
from services.ingress.history import HistoryStore, follow_history, run_janitor
from shared.clock import FakeClock
from shared.kafka import make_producer, make_reader, read_all_partitions
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
    store: HistoryStore
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


async def start_replica(settings: Settings, producer: AIOKafkaProducer, instance: int, now: float) -> Replica:
    clock = FakeClock(start=now)
    replica = Replica(HistoryStore(retention=RETENTION, clock=clock), clock)
    reader = make_reader(settings, f"retention-{instance}")
    await reader.start()
    await read_all_partitions(reader, settings.topic("history"))

    async def tombstone(key: str) -> None:
        replica.published.append(key)
        await producer.send_and_wait(settings.topic("history"), None, key=key.encode())

    replica.tasks = [asyncio.create_task(follow_history(reader, replica.store)),
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


async def until(predicate: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_ended_executions_are_forgotten_after_retention_by_one_replica_and_stay_gone_on_restart(
        topics: tuple[Settings, AIOKafkaProducer]) -> None:
    settings, producer = topics
    ended, active = "FN" + uuid.uuid4().hex, "FN" + uuid.uuid4().hex
    t0 = 1_700_000_000.0
    records: list[ExecutionRecord | StepRecord] = [step(ended, 0), step(ended, 1), execution(ended, "ended", t0),
                                                   step(active, 0), execution(active, "active", t0)]
    for record in records:
        await producer.send_and_wait(settings.topic("history"), encode(record), key=record.sid.encode())

    replicas = [await start_replica(settings, producer, 0, now=t0 + 10),
                await start_replica(settings, producer, 1, now=t0 + 10)]
    for r in replicas:
        await until(lambda r=r: r.store.sizes()["executions"] == 2 and r.store.sizes()["steps"] == 3)
        assert r.store.execution(ended) is not None

    for r in replicas:
        r.clock.advance(RETENTION)  # the ended execution is past retention now
    for r in replicas:
        assert r.store.execution(ended) is None, "reads forget it at once, before any tombstone"
        assert [s.index for s in r.store.steps_of(active)] == [0]
    await until(lambda: all(r.store.sizes() == {"executions": 1, "steps": 1, "orphans": 0, "deleted": 1, "pending": 0}
                            for r in replicas))
    assert sorted(replicas[0].published) == sorted([step(ended, 0).sid, step(ended, 1).sid, ended])
    assert replicas[0].published[-1] == ended  # steps first, the execution last

    replicas[1].clock.advance(STAGGER + 1)  # replica 1's turn: replica 0 has done the work
    await asyncio.sleep(0.5)
    assert replicas[1].published == []
    assert replicas[1].store.execution(active) is not None

    for r in replicas:
        await stop(r)
    restarted = await start_replica(settings, producer, 0, now=t0 + 10 + RETENTION)
    await until(lambda: restarted.store.sizes()["executions"] == 1)
    assert restarted.store.execution(ended) is None and restarted.store.execution(active) is not None
    assert restarted.store.steps_of(ended) == []
    await asyncio.sleep(0.5)
    assert restarted.published == [], "a restart re-reads the tombstones; it does not publish them again"
    await stop(restarted)
