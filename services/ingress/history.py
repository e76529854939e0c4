"""Keeping the history store in step with the ``history`` topic: resume from stored offsets, follow, housekeep.

The store (``history_store.py`` for its rules, ``history_sqlite.py`` for the
embedded backend) remembers the offsets it has applied, so a restarted ingress
reads only the tail of the topic. It is ``ready`` once it holds what the topic
held when the ingress started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from shared.clock import Clock
from shared.kafka import assign_all_partitions
from shared.settings import Settings

from .history_postgres import PostgresHistoryStore
from .history_sqlite import SqliteHistoryStore
from .history_store import HistoryStore, TopicRecord

__all__ = ["follow", "follow_history", "follow_history_group", "open_store", "resume_positions", "run_janitor",
           "sqlite_path"]

log = logging.getLogger(__name__)


def sqlite_path(settings: Settings) -> Path:
    """This replica's SQLite file: one per ingress instance (a StatefulSet pod's own volume)."""
    if settings.history_sqlite_path:
        return Path(settings.history_sqlite_path)
    return Path(settings.data_dir) / f"ingress-{settings.ingress_instance}" / "history.sqlite3"


def open_store(settings: Settings, clock: Clock) -> HistoryStore:
    """The configured backend (``SWITCHBOARD_HISTORY_STORE``): ``sqlite`` (default) or ``postgres``."""
    if settings.history_store == "postgres":
        return PostgresHistoryStore(settings.history_postgres_dsn, settings.topic("history"),
                                    retention=settings.history_retention_seconds, clock=clock,
                                    expiry=settings.execution_expiry_seconds)
    return SqliteHistoryStore(sqlite_path(settings), retention=settings.history_retention_seconds, clock=clock,
                              cache_kib=settings.history_cache_kib)


async def follow(settings: Settings, store: HistoryStore, reader: AIOKafkaConsumer, stored: dict[int, int]) -> None:
    """Keep ``store`` in step with the topic: every replica its own copy (SQLite), or a shared one (PostgreSQL)."""
    if settings.history_store == "postgres":
        await follow_history_group(settings, store)
    else:
        await follow_history(reader, store, settings.topic("history"), stored)


def resume_positions(stored: dict[int, int], begins: dict[int, int], ends: dict[int, int]) -> dict[int, int] | None:
    """Where to start reading each partition, or ``None`` when the store must be rebuilt from the beginning.

    A stored offset beyond a partition's end means the topic is not the one the store was built from (a
    new broker, a recreated topic): the store is stale. Below the beginning, retention removed records we
    never read; they were past retention anyway, so reading starts at the beginning.
    """
    if any(stored.get(p, 0) > end for p, end in ends.items()):
        return None
    return {p: max(stored.get(p, 0), begins.get(p, 0)) for p in ends}


async def follow_history(consumer: AIOKafkaConsumer, store: HistoryStore, topic: str, stored: dict[int, int]) -> None:
    """Resume from the offsets the (open) store has applied and apply every record of the topic to it, forever."""
    tps = await assign_all_partitions(consumer, topic)
    begins = {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
    ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    positions = resume_positions(stored, begins, ends)
    if positions is None:
        log.warning("the history store does not match the history topic (a new cluster?); rebuilding it")
        await store.reset()
        positions = dict(begins)
    for tp in tps:
        consumer.seek(tp, positions[tp.partition])
    behind = sum(ends[p] - positions[p] for p in ends)
    log.info("history store resumes", extra={"fields": {"records_behind": behind}})
    if all(positions[p] >= ends[p] for p in ends):
        store.ready.set()
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        records: list[TopicRecord] = [(tp.partition, r.offset, r.key, r.value)
                                      for tp, rs in batches.items() for r in rs]
        await store.apply(records)
        if not store.ready.is_set():
            here = {tp.partition: await consumer.position(tp) for tp in tps}
            if all(here[p] >= ends[p] for p in ends):
                store.ready.set()


class _ResumeFromStore(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition handed to this replica resumes where the store says it was applied, whoever applied it."""

    def __init__(self, consumer: AIOKafkaConsumer, store: HistoryStore, assigned: asyncio.Event) -> None:
        self.consumer, self.store, self.assigned = consumer, store, assigned

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = await self.store.offsets()
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)
        self.assigned.set()


async def follow_history_group(settings: Settings, store: HistoryStore) -> None:
    """Write the topic into a shared store as one member of the replicas' consumer group, forever.

    Each partition is written by one replica at a time; the offsets live in the store, in the same
    transaction as the rows, so a partition that moves resumes exactly where it was applied (Kafka's
    committed offsets are not used). ``ready`` is set once this replica's first partitions caught up.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id="ingress-history-writer",
                                group_id=f"{settings.topic_prefix}history-writer", enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100, fetch_min_bytes=65536,
                                max_poll_records=5000, session_timeout_ms=10000, heartbeat_interval_ms=3000)
    assigned = asyncio.Event()
    await consumer.start()
    try:
        consumer.subscribe([settings.topic("history")], listener=_ResumeFromStore(consumer, store, assigned))
        ends: dict[TopicPartition, int] | None = None
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            await store.apply([(tp.partition, r.offset, r.key, r.value) for tp, rs in batches.items() for r in rs])
            if not store.ready.is_set() and assigned.is_set():
                mine = list(consumer.assignment())
                ends = ends if ends is not None else await consumer.end_offsets(mine) if mine else {}
                positions = {tp: await consumer.position(tp) for tp in ends if tp in mine}
                if all(positions[tp] >= ends[tp] for tp in positions):
                    store.ready.set()
    finally:
        await consumer.stop()


Publish = Callable[[str], Awaitable[object]]


async def run_janitor(store: HistoryStore, tombstone: Publish, instance: int, interval: float = 10.0,
                      stagger: float = 60.0) -> None:
    """Every ``interval`` seconds apply retention locally and publish the tombstones still due; forever.

    Re-tombstoning late records of deleted executions is done by one replica: replica ``instance`` waits
    ``instance × stagger`` seconds longer than replica 0, and normally finds the work done.
    """
    await store.ready.wait()
    while True:
        keys = await store.housekeep(delay=instance * stagger)
        for position, key in enumerate(keys):
            try:
                await tombstone(key)
            except Exception:
                log.exception("publishing history tombstones failed; retrying next round")
                await store.retry(keys[position:])
                break
        if keys:
            log.info("history janitor tombstoned %d keys", len(keys), extra={"fields": await store.sizes()})
        await asyncio.sleep(interval)
