"""The floor: raw Kafka produce→consume round trip with the services' client library and settings.

Round trip = produce one message (acks=all, idempotent, linger 1 ms — as the services do) and wait until a
consumer (fetch wait 10 ms) receives it; sequential, so it is pure latency. Throughput = messages/s
produced and consumed in a pipelined burst.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import summarize

__all__ = ["measure_baseline"]


async def measure_baseline(bootstrap: str, round_trips: int = 500, burst: int = 20000) -> dict[str, Any]:
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"warmup")  # auto-creates the topic
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        latencies = []
        for i in range(round_trips):
            payload = f"{i}".encode()
            started = time.perf_counter()
            await producer.send(topic, payload, partition=0)
            while True:
                got = await consumer.getone()
                if got.value == payload:
                    break
            latencies.append(time.perf_counter() - started)
        body = b"x" * 300  # about the size of an event
        started = time.perf_counter()
        futures = [await producer.send(topic, body, partition=0) for _ in range(burst)]
        await asyncio.gather(*futures)
        received = 0
        while received < burst:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            received += sum(len(v) for v in batches.values())
        elapsed = time.perf_counter() - started
        return {"round_trip_seconds": summarize(latencies), "throughput_msgs_per_s": burst / elapsed}
    finally:
        await consumer.stop()
        await producer.stop()
