"""The scheduler service.

Timers live in the compacted ``timers`` topic (key = timer id, tombstone =
cancelled or fired). The consumer group only spreads partitions over replicas:
on every assignment the scheduler re-reads its partitions from the beginning,
so a crash or redeploy loses nothing and timers that came due meanwhile fire
late rather than never. A fire publishes ``TimerFired`` and then a tombstone;
a crash between the two fires the timer again, which the processor ignores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from shared import metrics
from shared.clock import Clock, SystemClock
from shared.messages import DecodeError, ScheduleTimer, TimerFired, decode, encode
from shared.settings import Settings

from .index import TimerIndex

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.scheduler.index.drop_partitions({tp.partition for tp in revoked})
        self.scheduler.loading.difference_update(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.scheduler.recover(assigned)


@dataclass
class Scheduler:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    index: TimerIndex = field(default_factory=TimerIndex)
    consumer: AIOKafkaConsumer | None = None
    producer: AIOKafkaProducer | None = None
    loading: set[TopicPartition] = field(default_factory=set)
    _ends: dict[TopicPartition, int] = field(default_factory=dict)
    _recovery_started: float = 0.0
    ready: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, client_id="scheduler", acks="all",
                                         enable_idempotence=True, linger_ms=2)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id="switchboard-scheduler",
                                         client_id="scheduler", enable_auto_commit=False,
                                         auto_offset_reset="earliest", fetch_max_wait_ms=50, max_poll_records=5000)
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([s.topic("timers")], listener=_Rebalance(self))

    async def stop(self) -> None:
        self.ready = False
        if self.consumer:
            await self.consumer.stop()
        if self.producer:
            await self.producer.stop()

    async def recover(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        if not assigned:
            self.ready = True
            return
        self._recovery_started = time.perf_counter()
        await self.consumer.seek_to_beginning(*assigned)
        ends = await self.consumer.end_offsets(assigned)
        self._ends.update(ends)
        self.loading.update(tp for tp in assigned if ends[tp] > 0)
        self._check_loaded()

    def _check_loaded(self) -> None:
        if not self.loading:
            if not self.ready and self._recovery_started:
                metrics.TIMERS_RECOVERY.set(time.perf_counter() - self._recovery_started)
            self.ready = True
            self._wake.set()

    def apply(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            if self.index.cancel(key) and self.ready:
                metrics.TIMERS_CANCELLED.inc()
            return
        try:
            timer = decode(value)
        except DecodeError:
            return
        if isinstance(timer, ScheduleTimer):
            self.index.put(key, timer.due_at, partition, value)
            self._wake.set()

    async def consume(self) -> None:
        assert self.consumer is not None
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=20000)
            for tp, records in batches.items():
                for record in records:
                    self.apply(tp.partition, record.key, record.value)
                if tp in self.loading and records and records[-1].offset + 1 >= self._ends.get(tp, 0):
                    self.loading.discard(tp)
            if self.loading:
                for tp in list(self.loading):
                    if await self.consumer.position(tp) >= self._ends.get(tp, 0):
                        self.loading.discard(tp)
            self._check_loaded()
            metrics.TIMERS_PENDING.set(len(self.index))

    async def fire_loop(self) -> None:
        assert self.producer is not None
        while True:
            if not self.ready:
                await asyncio.sleep(0.05)
                continue
            now = self.clock.now()
            due = self.index.pop_due(now)
            if due:
                await self._fire(due, now)
                continue
            nxt = self.index.next_due()
            self._wake.clear()
            timeout = 1.0 if nxt is None else max(0.0, min(1.0, nxt - now))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _fire(self, due: list[tuple[bytes, float, bytes]], now: float) -> None:
        assert self.producer is not None
        futures = []
        for _timer_id, due_at, payload in due:
            timer = decode(payload)
            assert isinstance(timer, ScheduleTimer)
            fired = TimerFired(timer.timer_id, timer.execution_sid, timer.route, timer.token, due_at, now)
            futures.append(metrics.watch_delivery("events", await self.producer.send(
                self.settings.topic("events"), encode(fired), key=timer.route.encode())))
            metrics.TIMERS_LATENESS.observe(max(0.0, now - due_at))
        await asyncio.gather(*futures)
        tombstones = [metrics.watch_delivery("timers", await self.producer.send(self.settings.topic("timers"), None,
                                                                                 key=timer_id))
                      for timer_id, _, _ in due]
        await asyncio.gather(*tombstones)
        metrics.TIMERS_FIRED.inc(len(due))
