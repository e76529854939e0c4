"""The processor's batched consume → apply → produce → commit loop (``SWITCHBOARD_PROCESSOR_LOOP=batched``).

One task owns everything: it takes up to ``processor_batch_records`` events per poll, applies them in offset
order per partition with the pure state machine (``machine.handle``), keeps the rows they change in the batch
(``batch.py``), then sends the batch's changelog rows (each route once, its last value) and outputs, waits until
Kafka has acknowledged *all* of them (acks=all, idempotent producer) and only then commits the batch's offsets.
So a committed event always has its row and its outputs in Kafka; an event whose batch did not finish is
delivered again and recognised as a replay by its offset (``replay.py``): its outputs are sent again, which the
state machine's wait tokens and the consumers' idempotency already tolerate.

Owning the loop is what removes the faust work-arounds (``faust_fixes.py``, ``gaps.py``): nothing is fetched and
then dropped behind our back (one task, records of a stale assignment are discarded by epoch and fetched again
from the committed offset), the flush before a commit is simply "await every delivery future", the committed
offset we keep is the one the broker accepted (a refused commit raises), unread partitions start at the topic's
beginning (aiokafka's ``auto_offset_reset``), and the producer is ours (idempotent, acks=all).

Rebalancing (eager, as aiokafka does it): the listener runs while the loop is between batches (it takes the loop's
lock; a batch in hand finishes first, commit included). Revoked partitions' rows are dropped (closed). Assigned
partitions are paused and loaded (``recovery.py``) before their first event; readiness is false meanwhile. A
zombie (stopped past the session timeout) that wakes may finish the batch it had: its commit is refused, so
its rows are not written to its local store and its outputs are duplicates; the group rejoin that follows
revokes everything, and what it gets back is loaded again from the changelog.

Replies and the HTTP requests a waiting webhook depends on are sent as soon as an event produces them (someone
waits); the rest goes out at the end of the batch. All of it is awaited before the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from shared import metrics
from shared.clock import Clock, SystemClock
from shared.flow_catalog import FlowCatalog, follow_flows
from shared.kafka import make_reader, read_all_partitions
from shared.settings import Settings
from shared.topics import changelog_topics, processor_app_id

from .batch import Batch, Output, outputs_of
from .counting import count_applied
from .intake import apply_event, decode_event, wait_for_flows
from .recovery import note_idle_rows, recover_partitions
from .route_store import RouteRows, discard_local, open_rows
from .route_sweep import SweepCandidates, droppable, idle
from .sprint import Env
from .state import decode_route_record, encode_route_record

__all__ = ["BatchedProcessor"]

log = logging.getLogger(__name__)

#: How long a poll waits for events when there are none (also the sweep interval of an idle processor).
POLL_MS = 200


class DeliveryFailed(Exception):
    """Some record of a batch was not acknowledged; its offsets are not committed."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: BatchedProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.processor.revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.processor.assigned([tp.partition for tp in assigned])


class BatchedProcessor:
    """The processor as one batched aiokafka loop; ``run`` until cancelled, then ``stop``."""

    def __init__(self, settings: Settings, clock: Clock | None = None, worker_id: str = "0") -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.datadir = Path(settings.processor_data_dir
                            or f"/tmp/switchboard-processor-{settings.topic_prefix}{worker_id}") / "batched"
        self.catalog = FlowCatalog()
        self.candidates = SweepCandidates()
        self.events_topic = settings.topic("events")
        self.changelog_topic = changelog_topics(settings)[0]
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.reader: AIOKafkaConsumer | None = None
        #: the rows of every partition this process owns (loaded or being loaded)
        self._stores: dict[int, RouteRows] = {}
        #: owned partitions not loaded yet (paused in the consumer until they are)
        self._recovering: set[int] = set()
        #: partition -> the committed offset the broker accepted (events below it never come back); -1 unknown
        self._committed: dict[int, int] = {}
        #: bumped by every rebalance: a poll's records are applied only if no rebalance began since it started
        self._epoch = 0
        self._lock = asyncio.Lock()
        self._assigned_once = False
        self._rebalancing = False
        self._stopping = False

    # -- life cycle ----------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """In the group, every owned partition loaded, the flow catalog caught up, not stopping."""
        return (self.catalog.ready.is_set() and self._assigned_once and not self._rebalancing
                and not self._recovering and not self._stopping)

    async def start(self) -> None:
        s = self.settings
        self.datadir.mkdir(parents=True, exist_ok=True)
        # One producer, no linger: a batch's records are all handed over before the sender task runs, so they
        # are batched per partition anyway; urgent ones (replies) must not wait.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, client_id="processor", acks="all", enable_idempotence=True,
            linger_ms=0, max_batch_size=256 * 1024, request_timeout_ms=30000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=processor_app_id(s), client_id="processor",
            enable_auto_commit=False, auto_offset_reset="earliest",
            # A SIGKILLed worker's partitions move after the session timeout: 10 s, as with faust.
            session_timeout_ms=10000, heartbeat_interval_ms=3000,
            fetch_max_wait_ms=500,  # a long poll, answered as soon as an event arrives
            max_poll_records=s.processor_batch_records,
            group_instance_id=s.processor_instance_id or None)
        self.reader = make_reader(s, "processor-changelog", bulk=True)
        await self.producer.start()
        await self.reader.start()
        await self.consumer.start()
        self.consumer.subscribe([self.events_topic], listener=_Rebalance(self))

    async def run(self) -> None:
        await asyncio.gather(self._load_flows(), self._loop())

    async def stop(self) -> None:
        """Finish the batch in hand (rows and outputs acknowledged, offsets committed), then leave."""
        self._stopping = True
        async with self._lock:
            if self.consumer is not None:
                await self.consumer.stop()
            for client in (self.producer, self.reader):
                if client is not None:
                    await client.stop()
            for store in self._stores.values():
                store.close()
            self._stores.clear()

    async def _load_flows(self) -> None:
        reader = make_reader(self.settings, "processor-flows", bulk=True)
        await reader.start()
        try:
            await read_all_partitions(reader, self.settings.topic("flows"))
            await follow_flows(reader, self.catalog)
        finally:
            await reader.stop()

    # -- rebalancing ---------------------------------------------------------------------------------

    async def revoked(self, partitions: list[int]) -> None:
        self._epoch += 1  # before waiting: a recovery in progress sees it and gives up
        self._rebalancing = True
        async with self._lock:  # the loop is between batches from here on
            self._epoch += 1
            for p in partitions:
                store = self._stores.pop(p, None)
                if store is not None:
                    store.close()
                self._recovering.discard(p)
                self._committed.pop(p, None)
                self.candidates.drop(p)
        log.info("event partitions revoked", extra={"fields": {"partitions": sorted(partitions)}})

    async def assigned(self, partitions: list[int]) -> None:
        self._epoch += 1
        async with self._lock:
            self._epoch += 1
            for p in partitions:
                if p not in self._stores:
                    self._stores[p] = open_rows(self.settings.processor_store, self.datadir, p)
                self._recovering.add(p)
            if self.consumer is not None and partitions:
                self.consumer.pause(*(TopicPartition(self.events_topic, p) for p in partitions))
            self._assigned_once = True
            self._rebalancing = False
        log.info("event partitions assigned", extra={"fields": {"partitions": sorted(partitions)}})

    async def _recover(self) -> None:
        """Load the rows of the partitions assigned but not loaded yet, then let their events in."""
        assert self.consumer is not None and self.reader is not None
        async with self._lock:
            epoch = self._epoch
            partitions = sorted(self._recovering)
            if not partitions:
                return
            started = time.perf_counter()
            local = {p: await note_idle_rows(p, self._stores[p], self.candidates) for p in partitions}

            def renew(p: int) -> RouteRows:
                self._stores[p].close()
                discard_local(self.datadir, p)
                self.candidates.drop(p)
                self._stores[p] = open_rows(self.settings.processor_store, self.datadir, p)
                return self._stores[p]

            stores = {p: self._stores[p] for p in partitions}
            folds = await recover_partitions(self.reader, self.changelog_topic, stores, self.candidates, renew,
                                             lambda: self._epoch == epoch)
            if self._epoch != epoch:
                return  # a rebalance began: the listener decides what is owned now
            tps = [TopicPartition(self.events_topic, p) for p in partitions]
            for tp in tps:
                # From the committed offset (an assignment starts there anyway; a reload must go back to it).
                committed = await self.consumer.committed(tp)
                if committed is None:
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)
                self._committed[tp.partition] = committed if committed else -1
            self._recovering.difference_update(partitions)
            self.consumer.resume(*tps)
        log.info("event partitions loaded", extra={"fields": {
            "partitions": partitions, "seconds": round(time.perf_counter() - started, 3),
            "changelog_records": sum(f.records for f in folds.values()),
            "ignored_stale_records": sum(f.ignored for f in folds.values()),
            "local_rows": sum(n for n, _ in local.values()), "idle_local_rows": sum(n for _, n in local.values())}})

    # -- the loop ------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self.consumer is not None
        while not self._stopping:
            if self._recovering:
                try:
                    await self._recover()
                except KafkaError:
                    log.exception("loading event partitions failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
            epoch = self._epoch
            polled = await self.consumer.getmany(timeout_ms=POLL_MS, max_records=self.settings.processor_batch_records)
            async with self._lock:
                if epoch != self._epoch or self._stopping:
                    continue  # fetched before a rebalance: fetched again from the committed offsets
                await self._batch(polled)

    async def _batch(self, polled: dict[TopicPartition, list[Any]]) -> None:
        batch = Batch()
        self._sweep(batch)
        urgent: list[asyncio.Future[Any]] = []
        for tp, records in polled.items():
            store = self._stores.get(tp.partition)
            if store is None or tp.partition in self._recovering:
                # Not loaded (cannot happen while paused; a guard): the position has moved past these events,
                # so go back to the committed offset rather than ever commit past them unapplied.
                log.warning("events of a partition not loaded; reading them again", extra={"fields": {
                    "partition": tp.partition, "records": len(records)}})
                self._reload({tp.partition})
                continue
            for record in records:
                await self._apply(batch, tp.partition, store, record, urgent)
                batch.consumed(tp.partition, record.offset)
        if batch.empty and not urgent:
            return
        try:
            offsets = await self._deliver(batch, urgent)
        except DeliveryFailed:
            log.exception("a batch was not acknowledged; its partitions are loaded again and its events re-read")
            self._reload(set(batch.positions) | set(batch.rows))
            return
        if await self._commit(batch):
            for p, rows in batch.rows.items():
                self._stores[p].write(rows, offsets.get(p, -1))
        else:
            # Refused: the group rebalanced (maybe we were a zombie). The rows we sent may be stale for the next
            # owner, so they never enter the local store, and no later batch may build on them: every partition
            # goes back to its committed offset and is loaded again (the rejoin's revoke usually comes first).
            self._reload(set(self._stores))

    async def _apply(self, batch: Batch, partition: int, store: RouteRows, record: Any,
                     urgent: list[asyncio.Future[Any]]) -> None:
        """Decode one event, run the state machine on it, keep the route's row in the batch, send or keep outputs."""
        key: bytes = record.key or b""
        message = decode_event(record.value, record.offset)
        if message is None:
            return
        await wait_for_flows(self.catalog, message, self.clock)
        written, stored = batch.row(partition, key)
        if not written:
            stored = store.get(key)
        route, executions = decode_route_record(stored)
        env = Env(now=self.clock.now(), settings=self.settings, flows=self.catalog.definition, offset=record.offset,
                  committed=self._committed.get(partition, -1), latest_revision=self.catalog.latest_revision)
        outcome = apply_event(message, route, executions, env)
        if outcome is None:
            return
        if outcome.route.empty and not executions:
            if stored is not None:  # a route that never had an execution: nothing to protect
                batch.delete(partition, key, route.applied)
                self.candidates.forget(partition, key)
        else:
            batch.write(partition, key, encode_route_record(outcome.route, executions))
            if idle(outcome.route, executions):
                self.candidates.note(partition, key, outcome.route.applied)
        for output in outputs_of(outcome):
            if output.urgent:
                urgent.append(await self._send(output))
            else:
                batch.outputs.append(output)
        if outcome.replayed:
            log.info("re-sent the outputs of an event applied before a restart", extra={"fields": {
                "offset": env.offset, "commands": len(outcome.commands), "records": len(outcome.records)}})
            metrics.PROCESSOR_EVENTS.labels(message.kind, "replayed").inc()
        else:
            count_applied(message.kind, outcome.records)

    def _sweep(self, batch: Batch) -> None:
        """Delete the rows that no longer protect anything (``route_sweep.py``): idle, and every event they
        applied below the committed offset the broker accepted."""
        for p, store in self._stores.items():
            if p in self._recovering:
                continue
            committed = self._committed.get(p, -1)
            for key in self.candidates.due(p, committed):
                stored = store.get(key)
                if stored is None:
                    continue
                route, executions = decode_route_record(stored)
                if droppable(route, executions, committed):
                    batch.delete(p, key, route.applied)

    async def _send(self, output: Output) -> asyncio.Future[Any]:
        assert self.producer is not None
        try:
            delivery = await self.producer.send(self.settings.topic(output.topic), output.value, key=output.key,
                                                partition=output.partition)
        except KafkaError as exc:
            metrics.KAFKA_PRODUCE_ERRORS.labels(output.topic).inc()
            raise DeliveryFailed(str(exc)) from exc
        metrics.watch_delivery(output.topic, delivery)
        return delivery  # type: ignore[no-any-return]

    async def _deliver(self, batch: Batch, urgent: list[asyncio.Future[Any]]) -> dict[int, int]:
        """Send the batch's rows and outputs and wait for every acknowledgement; the changelog offset of each
        partition's last row."""
        assert self.producer is not None
        changelog: dict[int, list[asyncio.Future[Any]]] = {}
        others = list(urgent)
        try:
            for p, key, value, headers in batch.changelog():
                delivery = await self.producer.send(self.changelog_topic, value, key=key, partition=p, headers=headers)
                changelog.setdefault(p, []).append(delivery)
        except KafkaError as exc:
            raise DeliveryFailed(str(exc)) from exc
        for output in batch.outputs:
            others.append(await self._send(output))
        rows = [d for ds in changelog.values() for d in ds]
        results = await asyncio.gather(*rows, *others, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise DeliveryFailed(str(failed)) from failed
        return {p: max(d.result().offset for d in ds) for p, ds in changelog.items()}

    async def _commit(self, batch: Batch) -> bool:
        """Commit the batch's positions; True if the broker accepted them (or there was nothing to commit)."""
        assert self.consumer is not None
        if not batch.positions:
            return True
        offsets = {TopicPartition(self.events_topic, p): position for p, position in batch.positions.items()}
        try:
            await self.consumer.commit(offsets)  # type: ignore[arg-type]
        except KafkaError as exc:
            log.warning("offset commit refused (the group rebalanced); the batch's events will be applied again",
                        extra={"fields": {"error": repr(exc), "partitions": sorted(batch.positions)}})
            return False
        for p, position in batch.positions.items():
            self._committed[p] = max(self._committed.get(p, -1), position)
        return True

    def _reload(self, partitions: set[int]) -> None:
        """Pause ``partitions`` and load them again (``_recover`` also seeks them back to the committed offset)."""
        assert self.consumer is not None
        owned = [p for p in partitions if p in self._stores]
        self._recovering.update(owned)
        if owned:
            self.consumer.pause(*(TopicPartition(self.events_topic, p) for p in owned))
