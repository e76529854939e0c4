"""The http-worker service: consume ``http-requests``, perform them concurrently, publish results.

Offsets are committed only below the oldest request still in flight, after
its result has been produced, so a crash repeats requests (same idempotency
key) and never loses one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared import metrics
from shared.messages import DecodeError, HttpRequest, decode, encode
from shared.settings import Settings

from .offsets import OffsetTracker
from .perform import Performer
from .policy import GuardedResolver, OutboundPolicy

__all__ = ["HttpWorker"]

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: HttpWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker.commit()
        for tp in revoked:
            self.worker.tracker.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


@dataclass
class HttpWorker:
    settings: Settings
    consumer: AIOKafkaConsumer | None = None
    producer: AIOKafkaProducer | None = None
    session: aiohttp.ClientSession | None = None
    tracker: OffsetTracker[TopicPartition] = field(default_factory=OffsetTracker)
    ready: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        s = self.settings
        policy = OutboundPolicy(s.outbound_networks, s.outbound_hosts)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=s.http_concurrency,
                                         ttl_dns_cache=30, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             timeout=aiohttp.ClientTimeout(total=s.http_timeout_seconds + 1),
                                             auto_decompress=True)
        self.performer = Performer(self.session, s, policy)
        self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, client_id="http-worker", acks="all",
                                         enable_idempotence=True, linger_ms=1)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id="switchboard-http-worker", client_id="http-worker",
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=10, max_poll_records=500,
        )
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([s.topic("http-requests")], listener=_Rebalance(self))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.http_timeout_seconds + 2)
        await self.commit()
        if self.consumer:
            await self.consumer.stop()
        if self.producer:
            await self.producer.stop()
        if self.session:
            await self.session.close()

    async def run(self) -> None:
        assert self.consumer is not None
        semaphore = asyncio.Semaphore(self.settings.http_concurrency)
        committer = asyncio.create_task(self._commit_loop())
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=100, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        await semaphore.acquire()
                        self.tracker.started(tp, record.offset)
                        task = asyncio.create_task(self._one(tp, record.offset, record.value, semaphore))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
        finally:
            committer.cancel()

    async def _one(self, tp: TopicPartition, offset: int, value: bytes | None, semaphore: asyncio.Semaphore) -> None:
        try:
            try:
                request = decode(value or b"")
            except DecodeError:
                log.error("dropping an undecodable request at %s:%s", tp, offset)
                return
            if not isinstance(request, HttpRequest):
                return
            result = await self.performer.perform(request)
            metrics.HTTP_WORKER_REQUESTS.labels(request.purpose, result.outcome).inc()
            metrics.HTTP_WORKER_DURATION.labels(request.purpose).observe(result.elapsed)
            assert self.producer is not None
            while True:
                try:
                    await self.producer.send_and_wait(self.settings.topic("events"), encode(result),
                                                      key=result.route.encode())
                    break
                except Exception:  # noqa: BLE001 - keep retrying: losing a result would strand the execution
                    metrics.KAFKA_PRODUCE_ERRORS.labels("events").inc()
                    log.exception("could not publish a result; retrying")
                    await asyncio.sleep(1)
        finally:
            self.tracker.finished(tp, offset)
            semaphore.release()

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                await self.commit()
            except Exception:  # noqa: BLE001 - a failed commit is retried on the next tick
                log.exception("offset commit failed")

    async def commit(self) -> None:
        if self.consumer is None:
            return
        offsets = {tp: off for tp, off in self.tracker.committable().items() if tp in self.consumer.assignment()}
        if offsets:
            await self.consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
            self.tracker.mark_committed(offsets)
