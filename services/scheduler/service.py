"""The scheduler service: the Kafka shell around :class:`~services.scheduler.book.TimerBook`.

Timers live in the compacted ``timers`` topic (key = timer id, value =
``ScheduleTimer``, tombstone = cancelled or fired). The consumer group only
spreads partitions over replicas; nothing is committed. On assignment the
scheduler seeks each partition to its beginning (or, for a partition it owned a
moment ago, to where it stopped), reads up to the end offset taken at
assignment and only then fires that partition's timers — so a crash or
redeploy loses nothing, cancels read during loading are honoured, and timers
that came due meanwhile fire late rather than never.

A fire publishes ``TimerFired`` to ``events`` keyed by the route (the same
partitioner as every other producer of ``events``, so the processor that owns
the route gets it) and, once that is acknowledged, a tombstone. A crash
between the two fires the timer again; the processor ignores the second fire
by its wait token. Two tasks share one event loop: ``consume`` applies records,
``fire_loop`` sleeps until the earliest due time of the loaded partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from shared import metrics
from shared.clock import Clock, SystemClock
from shared.kafka import make_producer
from shared.messages import TimerFired, encode
from shared.settings import Settings

from .book import Claim, TimerBook

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

FIRE_BATCH = 1000
#: Longest the fire loop sleeps without looking again (bounds the damage of a missed wake-up).
MAX_SLEEP = 1.0
RETRY_DELAY = 0.5


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.scheduler.on_revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.scheduler.on_assigned([tp.partition for tp in assigned])


@dataclass
class Scheduler:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    book: TimerBook = field(default_factory=TimerBook)
    consumer: AIOKafkaConsumer | None = None
    producer: AIOKafkaProducer | None = None
    _assigned_once: bool = False
    _rebalancing: bool = False
    _stopping: bool = False
    _recovery_started: float | None = None
    _untaken: list[int] | None = None  # an assignment whose seeks failed; the consume loop retries it
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def timers_topic(self) -> str:
        return self.settings.topic("timers")

    @property
    def events_topic(self) -> str:
        return self.settings.topic("events")

    @property
    def ready(self) -> bool:
        """Ready = in the group, not mid-rebalance, every owned partition loaded."""
        return self._assigned_once and not self._rebalancing and not self._stopping and self.book.all_live()

    async def start(self) -> None:
        s = self.settings
        self._idle.set()
        self.producer = make_producer(s, "scheduler")
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=s.topic_prefix + "scheduler", client_id="scheduler",
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50,
            max_partition_fetch_bytes=4 * 1024 * 1024, max_poll_records=20000,
            group_instance_id=s.scheduler_instance_id or None)
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([self.timers_topic], listener=_Rebalance(self))

    async def stop(self) -> None:
        self._stopping = True
        if self.consumer:
            await self.consumer.stop()
        if self.producer:
            await self.producer.stop()

    # -- rebalancing -----------------------------------------------------------------------------

    async def on_revoked(self, partitions: list[int]) -> None:
        """Stop firing the revoked partitions, then let fires already sent finish and get their tombstones.

        The next owner reads up to the end offsets it sees after this returns, so
        the tombstones written here reach it and it does not fire those timers again.
        """
        self._rebalancing = True
        self._untaken = None
        self.book.revoke(partitions, self.clock.now())
        try:
            await asyncio.wait_for(self._idle.wait(), 10)
            if self.producer is not None:
                await asyncio.wait_for(self.producer.flush(), 10)
        except (TimeoutError, KafkaError):
            log.warning("fires in flight at revocation did not finish; the next owner may fire them again")
        self._publish_gauges()
        log.info("timer partitions revoked", extra={"fields": {"partitions": sorted(partitions)}})

    async def on_assigned(self, partitions: list[int]) -> None:
        self._recovery_started = time.perf_counter()
        self._untaken = partitions
        try:
            await self._take(partitions)
        except KafkaError:
            log.exception("preparing assigned timer partitions failed; retrying from the consume loop")
        self._assigned_once = True
        self._rebalancing = False
        log.info("timer partitions assigned", extra={"fields": {"partitions": sorted(partitions)}})
        self._after_progress()

    async def _take(self, partitions: list[int]) -> None:
        """Seek the assigned partitions to where loading starts and learn where it ends."""
        assert self.consumer is not None
        tps = [TopicPartition(self.timers_topic, p) for p in partitions]
        beginnings = await self.consumer.beginning_offsets(tps) if tps else {}
        plan = self.book.assign(partitions, self.clock.now(), {tp.partition: off for tp, off in beginnings.items()})
        for p, offset in plan.items():
            self.consumer.seek(TopicPartition(self.timers_topic, p), offset)
        self._untaken = None
        await self._size()

    async def _size(self) -> None:
        """Fetch end offsets for owned partitions that do not have one yet."""
        assert self.consumer is not None
        unsized = self.book.unsized()
        if not unsized:
            return
        ends = await self.consumer.end_offsets([TopicPartition(self.timers_topic, p) for p in unsized])
        for tp, end in ends.items():
            self.book.set_end(tp.partition, end)
        self._after_progress()

    # -- consuming -------------------------------------------------------------------------------

    async def consume(self) -> None:
        assert self.consumer is not None
        book = self.book
        while True:
            if self._untaken is not None or book.unsized():
                try:
                    if self._untaken is not None:
                        await self._take(self._untaken)
                    else:
                        await self._size()
                except KafkaError:
                    log.exception("preparing assigned timer partitions failed; retrying")
                    await asyncio.sleep(RETRY_DELAY)
                    continue
            batches = await self.consumer.getmany(timeout_ms=200, max_records=20000)
            woke = False
            for tp, records in batches.items():
                tally = book.apply_records(tp.partition, records)
                woke = woke or tally.scheduled > 0
                state = book.partitions.get(tp.partition)
                if tally.cancelled and state is not None and state.live:  # not history replayed while loading
                    metrics.TIMERS_CANCELLED.inc(tally.cancelled)
                if tally.invalid:
                    metrics.TIMER_RECORDS_INVALID.inc(len(tally.invalid))
                    log.warning("ignoring timers records that are not ScheduleTimer", extra={"fields": {
                        "partition": tp.partition, "offsets": tally.invalid[:20], "count": len(tally.invalid)}})
            for partition in book.loading():
                try:
                    position = await self.consumer.position(TopicPartition(self.timers_topic, partition))
                except IllegalStateError:
                    continue  # revoked meanwhile
                if book.caught_up(partition, position):
                    woke = True
            if woke:
                self._wake.set()
            self._after_progress()

    def _after_progress(self) -> None:
        metrics.TIMERS_PENDING.set(self.book.pending())
        if self._recovery_started is not None and self.book.all_live() and not self._rebalancing:
            elapsed = time.perf_counter() - self._recovery_started
            self._recovery_started = None
            metrics.TIMERS_RECOVERY.set(elapsed)
            loaded = sum(s.loaded_records for s in self.book.partitions.values())
            log.info("timer partitions loaded", extra={"fields": {
                "seconds": round(elapsed, 3), "records": loaded, "pending": self.book.pending(),
                "partitions": sorted(self.book.owned())}})
            self._wake.set()
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        loading = len(self.book.loading())
        metrics.TIMER_PARTITIONS.labels("loading").set(loading)
        metrics.TIMER_PARTITIONS.labels("live").set(len(self.book.owned()) - loading)

    # -- firing ----------------------------------------------------------------------------------

    async def fire_loop(self) -> None:
        while True:
            now = self.clock.now()
            claims = self.book.pop_due(now, FIRE_BATCH)
            if claims:
                if not await self._fire(claims):
                    await asyncio.sleep(RETRY_DELAY)
                continue
            nxt = self.book.next_due()
            self._wake.clear()
            timeout = MAX_SLEEP if nxt is None else max(0.0, min(MAX_SLEEP, nxt - now))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _fire(self, claims: list[Claim]) -> bool:
        """Publish ``TimerFired`` for each claim still valid, then tombstone the delivered ones."""
        assert self.producer is not None
        self._idle.clear()
        try:
            sent: list[tuple[Claim, asyncio.Future[object]]] = []
            ok = True
            for claim in claims:
                if not self.book.begin_send(claim):
                    continue
                t = claim.timer
                now = self.clock.now()
                fired = TimerFired(t.timer_id, t.execution_sid, t.route, t.token, t.due_at, now)
                try:
                    future = await self.producer.send(self.events_topic, encode(fired), key=t.route.encode())
                except KafkaError:
                    ok = False
                    metrics.KAFKA_PRODUCE_ERRORS.labels("events").inc()
                    self.book.finish(claim, delivered=False)
                    continue
                sent.append((claim, future))
                metrics.TIMERS_LATENESS.observe(max(0.0, now - t.due_at))
            delivered = 0
            for claim, future in sent:
                try:
                    await future
                except KafkaError:
                    ok = False
                    metrics.KAFKA_PRODUCE_ERRORS.labels("events").inc()
                    self.book.finish(claim, delivered=False)
                    continue
                delivered += 1
                if self.book.finish(claim, delivered=True):
                    await self._tombstone(claim.key)
            metrics.TIMERS_FIRED.inc(delivered)
            if not ok:
                log.warning("some timer fires failed; they are retried")
            return ok
        finally:
            self._idle.set()

    async def _tombstone(self, key: bytes) -> None:
        """Delete a fired timer. Not awaited to delivery: a lost tombstone only means a harmless second fire."""
        assert self.producer is not None
        try:
            metrics.watch_delivery("timers", await self.producer.send(self.timers_topic, None, key=key))
        except KafkaError:
            metrics.KAFKA_PRODUCE_ERRORS.labels("timers").inc()
