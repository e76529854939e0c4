"""The http-worker service: consume ``http-requests``, perform them concurrently, publish results.

Delivery guarantees (at least once, never lost):

* A request's result is produced to ``events`` (keyed by the execution's
  route, acks=all) **before** its offset may be committed, and offsets are
  committed only below the oldest request still in flight
  (:class:`~services.http_worker.offsets.OffsetTracker`). A crash repeats the
  unfinished requests, with the same ``Idempotency-Key``; the processor ignores
  a second result for a wait it has already left.
* On a rebalance the worker stops starting requests of the revoked partitions,
  lets the ones in flight finish (each is bounded by the 10 s timeout), commits
  and only then lets the partitions go - so the next owner does not repeat
  finished work. Records fetched before the rebalance but not yet started are
  dropped; the new assignment fetches them again from the committed offset.
* SIGTERM (``stop``): readiness turns false, no new requests start, the ones
  in flight finish, offsets are committed, the consumer leaves its group.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared import metrics
from shared.kafka import make_producer
from shared.messages import DecodeError, HttpRequest, HttpResult, decode, encode
from shared.settings import Settings

from .offsets import OffsetTracker
from .perform import Performer
from .policy import GuardedResolver, OutboundPolicy

__all__ = ["GROUP_ID", "HttpWorker", "make_session"]

log = logging.getLogger(__name__)

GROUP_ID = "switchboard-http-worker"


def make_session(settings: Settings, policy: OutboundPolicy,
                 resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The one outbound session: guarded resolver, no environment proxies, bounded connections.

    ``resolver`` is the inner (real) resolver the guard filters; the default is aiohttp's.
    """
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, resolver), limit=settings.http_concurrency,
                                     ttl_dns_cache=30)
    # The Performer enforces the timeout over all hops; this is only a backstop.
    timeout = aiohttp.ClientTimeout(total=settings.http_timeout_seconds + 1)
    return aiohttp.ClientSession(connector=connector, trust_env=False, timeout=timeout, auto_decompress=True,
                                 read_bufsize=2**16)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: HttpWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker.release(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted(tp.partition for tp in assigned))


@dataclass
class HttpWorker:
    settings: Settings
    consumer: AIOKafkaConsumer | None = None
    producer: AIOKafkaProducer | None = None
    session: aiohttp.ClientSession | None = None
    performer: Performer | None = None
    tracker: OffsetTracker[TopicPartition] = field(default_factory=OffsetTracker)
    _tasks: dict[TopicPartition, set[asyncio.Task[None]]] = field(default_factory=dict)
    #: Bumped when a revocation begins: records fetched before it are not started (they are fetched again).
    _generation: int = 0
    #: Bumped when a partition is forgotten: a task that outlived its partition must not touch the new bookkeeping.
    _epochs: dict[TopicPartition, int] = field(default_factory=dict)
    _started: bool = False
    _running: bool = False
    _stopping: bool = False
    _commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def ready(self) -> bool:
        """Connected to Kafka, consuming, and not shutting down."""
        return self._started and self._running and not self._stopping

    async def start(self) -> None:
        s = self.settings
        policy = OutboundPolicy(s.outbound_networks, s.outbound_hosts)
        self.session = make_session(s, policy)
        self.performer = Performer(self.session, s, policy)
        self.producer = make_producer(s, "http-worker")
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=GROUP_ID, client_id="http-worker",
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=500,  # long poll: answered on arrival
            max_poll_records=min(500, s.http_concurrency * 2),
        )
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([s.topic("http-requests")], listener=_Rebalance(self))
        self._started = True

    async def run(self) -> None:
        """Consume until cancelled; each request runs in its own task, at most ``http_concurrency`` at once."""
        assert self.consumer is not None
        slots = asyncio.Semaphore(self.settings.http_concurrency)
        committer = asyncio.create_task(self._commit_loop())
        self._running = True
        try:
            while not self._stopping:
                batches = await self.consumer.getmany(timeout_ms=100)
                generation = self._generation
                for tp, records in batches.items():
                    for record in records:
                        await slots.acquire()
                        if generation != self._generation or self._stopping:
                            slots.release()
                            break  # a rebalance happened meanwhile: these records are fetched again
                        self._spawn(tp, record.offset, record.value, slots)
                    if generation != self._generation or self._stopping:
                        break
        finally:
            self._running = False
            committer.cancel()

    def _spawn(self, tp: TopicPartition, offset: int, value: bytes | None, slots: asyncio.Semaphore) -> None:
        self.tracker.started(tp, offset)
        task = asyncio.create_task(self._one(tp, offset, value, self._epochs.get(tp, 0), slots))
        tasks = self._tasks.setdefault(tp, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _one(self, tp: TopicPartition, offset: int, value: bytes | None, epoch: int,
                   slots: asyncio.Semaphore) -> None:
        done = False  # only a request whose result is published (or a record skipped) may be committed
        try:
            request = self._request(tp, offset, value)
            if request is not None:
                assert self.performer is not None
                result = await self.performer.perform(request)
                metrics.HTTP_WORKER_REQUESTS.labels(request.purpose, result.outcome).inc()
                metrics.HTTP_WORKER_DURATION.labels(request.purpose).observe(result.elapsed)
                await self._publish(result)
            done = True
        finally:
            # A task that outlived its partition (revoked, maybe assigned again since) must not touch the
            # current bookkeeping; a cancelled or failed one stays "in flight" so it is never committed past.
            if done and epoch == self._epochs.get(tp, 0):
                self.tracker.finished(tp, offset)
            slots.release()

    @staticmethod
    def _request(tp: TopicPartition, offset: int, value: bytes | None) -> HttpRequest | None:
        try:
            request = decode(value or b"")
        except DecodeError:
            log.error("skipping an undecodable record at %s:%s", tp, offset)
            return None
        if not isinstance(request, HttpRequest):
            log.error("skipping a %s record at %s:%s", type(request).__name__, tp, offset)
            return None
        return request

    async def _publish(self, result: HttpResult) -> None:
        """Produce until acknowledged: losing a result would strand the execution."""
        assert self.producer is not None
        while True:
            try:
                await self.producer.send_and_wait(self.settings.topic("events"), encode(result),
                                                  key=result.route.encode())
                return
            except Exception:  # noqa: BLE001 - retried; the offset stays uncommitted meanwhile
                metrics.KAFKA_PRODUCE_ERRORS.labels("events").inc()
                log.exception("could not publish the result of %s; retrying", result.request_id)
                await asyncio.sleep(1)

    async def release(self, revoked: set[TopicPartition]) -> None:
        """Rebalance: stop starting work on ``revoked``, finish what runs, commit, forget them."""
        self._generation += 1
        running = self._running_tasks(revoked)
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.http_timeout_seconds + 5)
            if late:
                log.warning("%d requests still running while their partitions are revoked", len(late))
        try:
            await self.commit()
        except Exception:  # noqa: BLE001 - the next owner repeats uncommitted requests (same idempotency keys)
            log.exception("commit before giving up partitions failed")
        for tp in revoked:
            self.tracker.forget(tp)
            self._tasks.pop(tp, None)
            self._epochs[tp] = self._epochs.get(tp, 0) + 1

    def _running_tasks(self, partitions: set[TopicPartition]) -> set[asyncio.Task[None]]:
        running: set[asyncio.Task[None]] = set()
        for tp in partitions:
            running |= self._tasks.get(tp, set())
        return running

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                await self.commit()
            except Exception:  # noqa: BLE001 - a failed commit is retried on the next tick
                log.exception("offset commit failed")

    async def commit(self) -> None:
        """Commit, for every assigned partition, the offset below its oldest request in flight."""
        if self.consumer is None:
            return
        async with self._commit_lock:  # one commit at a time, so committed offsets never go backwards
            assigned = self.consumer.assignment()
            offsets = {tp: off for tp, off in self.tracker.committable().items() if tp in assigned}
            if offsets:
                await self.consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
                self.tracker.mark_committed(offsets)

    async def stop(self) -> None:
        """Graceful stop (SIGTERM): finish in-flight requests, commit, leave the group, close."""
        self._stopping = True
        running = self._running_tasks(set(self._tasks))
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.http_timeout_seconds + 5)
            for task in late:
                task.cancel()
        try:
            await self.commit()
        except Exception:  # noqa: BLE001 - uncommitted requests are repeated by the next owner
            log.exception("final commit failed")
        if self.consumer:
            await self.consumer.stop()
        if self.producer:
            await self.producer.stop()
        if self.session:
            await self.session.close()
