"""Reading back skipped events (services/processor/gaps.py) against the real broker: exactly the offsets asked for."""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.processor.gaps import read_range
from shared.kafka import make_producer, make_reader
from shared.settings import Settings


async def test_read_range_returns_the_records_of_one_partition_from_start_up_to_end_in_order(
        settings: Settings) -> None:
    topic = f"switchboard-test-gaps-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = make_producer(settings, "it-gap-producer")
    reader = make_reader(settings, "it-gap-reader")
    await producer.start()
    await reader.start()
    try:
        for n in range(6):
            await producer.send_and_wait(topic, f"p0-{n}".encode(), key=b"k", partition=0)
            await producer.send_and_wait(topic, f"p1-{n}".encode(), key=b"k", partition=1)
        records: list[Any] = await read_range(reader, topic, 0, 2, 5)
        assert [(r.partition, r.offset, r.value) for r in records] == [
            (0, 2, b"p0-2"), (0, 3, b"p0-3"), (0, 4, b"p0-4")]
        # The same reader serves the next gap, on another partition.
        records = await read_range(reader, topic, 1, 0, 1)
        assert [(r.partition, r.offset, r.value) for r in records] == [(1, 0, b"p1-0")]
    finally:
        await reader.stop()
        await producer.stop()
