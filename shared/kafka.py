"""aiokafka clients configured the one way every service uses them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.settings import Settings

__all__ = ["assign_all_partitions", "follow", "make_producer", "make_reader", "read_all_partitions"]


def make_producer(settings: Settings, client_id: str, linger_ms: int = 1) -> AIOKafkaProducer:
    """Durable and quick: acks=all, idempotent, small linger so replies are not held back."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )


def make_reader(settings: Settings, client_id: str, bulk: bool = False) -> AIOKafkaConsumer:
    """A consumer without a group: the caller assigns partitions and offsets itself.

    ``bulk`` readers (history, flows) are not latency-critical: they let the broker gather up to
    64 kB or 100 ms per fetch, which cuts fetch requests — CPU on both sides — by an order of
    magnitude under load. Latency-critical readers (replies) get whatever is there at once: a
    fetch is a long poll that the broker answers as soon as one byte arrives, so their long
    ``fetch_max_wait_ms`` costs no latency, only fewer idle polls.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100 if bulk else 500,
        fetch_min_bytes=65536 if bulk else 1,
        max_poll_records=5000,
    )


async def assign_all_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of ``topic`` (positions left to the caller); return them."""
    for _ in range(100):
        metadata = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - aiokafka has no public call
        ids = metadata.partitions_for_topic(topic)
        if ids:
            tps = [TopicPartition(topic, p) for p in sorted(ids)]
            consumer.assign(tps)
            return tps
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic} does not exist; run the topic creation first")


async def read_all_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of ``topic`` from the beginning; return them."""
    tps = await assign_all_partitions(consumer, topic)
    await consumer.seek_to_beginning(*tps)
    return tps


async def follow(consumer: AIOKafkaConsumer, apply: Callable[[bytes | None, bytes | None, int], None],
                 ready: asyncio.Event) -> None:
    """Apply every record (key, value, offset) of the assigned partitions, forever; set ``ready`` once caught up with the
    end offsets seen at start (a read model is only served once it holds what existed when it started)."""
    tps = list(consumer.assignment())
    ends = await consumer.end_offsets(tps)
    if all(ends[tp] == 0 for tp in tps):
        ready.set()
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                apply(record.key, record.value, record.offset)
        if not ready.is_set():
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                ready.set()
