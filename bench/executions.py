"""Execution throughput: REST-started executions of the 6-widget flow, open loop, end-to-end latency.

End-to-end latency = from sending ``POST …/Executions`` to the moment the ended execution record appears on
the ``history`` topic (read directly by the benchmark, so reads of the REST API are not part of the load).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import summarize
from bench.load import open_loop
from shared.messages import ExecutionRecord, HistoryBatch, decode

__all__ = ["run_executions"]


async def _follow_ended(bootstrap: str, topic: str, ended: dict[str, float], stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=10)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        for _ in range(50):
            if parts:
                break
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=10000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    if record.value and b'"status":"ended"' in record.value:
                        message = decode(record.value)
                        if isinstance(message, HistoryBatch) and message.execution:
                            ended.setdefault(message.execution_sid, now)
                        elif isinstance(message, ExecutionRecord):
                            ended.setdefault(message.sid, now)
    finally:
        await consumer.stop()


async def run_executions(base_url: str, auth: dict[str, str], flow_sid: str, bootstrap: str, history_topic: str,
                         rate: float, duration: float, cpu: Any = None, cpu_outside: Any = None) -> dict[str, Any]:
    """``cpu``: CPU seconds of the engine's processes by name (their sum is the engine's CPU per execution);
    ``cpu_outside``: the same for what shares the machine but is not the engine (load generator, stub)."""
    ended: dict[str, float] = {}
    started: dict[str, float] = {}
    stop = asyncio.Event()
    follower = asyncio.create_task(_follow_ended(bootstrap, history_topic, ended, stop))
    await asyncio.sleep(1.0)
    connector = aiohttp.TCPConnector(limit=512)
    cpu_before = cpu() if cpu else {}
    outside_before = cpu_outside() if cpu_outside else {}
    wall = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, headers=auth) as session:
        url = f"{base_url}/v2/Flows/{flow_sid}/Executions"

        async def call(i: int) -> str | None:
            sent = time.perf_counter()
            data = {"To": f"+1{2000000000 + i}", "From": "+15559990000"}
            async with session.post(url, data=data) as response:
                body = await response.read()
                if response.status != 201:
                    return f"http_{response.status}"
                started[orjson.loads(body)["sid"]] = sent
                return None

        load = await open_loop(rate, duration, call)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and len([s for s in started if s in ended]) < len(started):
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - wall
    cpu_after = cpu() if cpu else {}
    outside_after = cpu_outside() if cpu_outside else {}
    cpu_used = sum(cpu_after.values()) - sum(cpu_before.values()) if cpu else 0.0
    stop.set()
    await follower
    e2e = [ended[s] - t for s, t in started.items() if s in ended]
    completions = sorted(ended[s] for s in started if s in ended)
    span = (completions[-1] - completions[0]) if len(completions) > 1 else float("nan")
    return {
        "target_rate": rate, "duration_s": duration, "sent": load.sent, "created": load.ok, "errors": load.errors,
        "generator_behind": load.behind, "completed": len(e2e),
        "completed_per_s": len(completions) / span if span == span and span > 0 else float("nan"),
        "create_latency_seconds": summarize(load.latencies), "end_to_end_seconds": summarize(e2e),
        "cpu_seconds_per_execution": cpu_used / len(e2e) if e2e else float("nan"), "wall_seconds": elapsed,
        "cpu_ms_per_execution_by_process": {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / len(e2e), 3) for name in cpu_after
        } if e2e else {},
        "cpu_ms_per_execution_outside_engine": {
            name: round((outside_after[name] - outside_before.get(name, 0.0)) * 1000 / len(e2e), 3)
            for name in outside_after
        } if e2e else {},
    }
