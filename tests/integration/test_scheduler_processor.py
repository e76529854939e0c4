"""Timers end to end on the running cluster: processor → timers topic → scheduler → events → processor.

A flow parks on an Add TwiML Redirect with a short timeout; the cluster's own
scheduler fires the timer and the processor takes ``timeout``. A stale fire
published while it waits and a duplicate of the real fire published after it
moved on change nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.ids import new_sid
from shared.messages import ScheduleTimer, TimerFired, decode, encode
from shared.settings import Settings

FLOW = {
    "description": "a redirect that times out",
    "states": [
        {"name": "Trigger", "type": "trigger", "properties": {},
         "transitions": [{"event": "incomingRequest", "next": "away"}]},
        {"name": "away", "type": "add-twiml-redirect",
         "properties": {"url": "https://app.example.com/twiml", "method": "POST", "timeout": "3"},
         "transitions": [{"event": "return"}, {"event": "timeout", "next": "timed_out"}, {"event": "fail"}]},
        {"name": "timed_out", "type": "set-variables",
         "properties": {"variables": [{"key": "outcome", "value": "timed out"}]},
         "transitions": [{"event": "next"}]},
    ],
    "initial_state": "Trigger",
    "flags": {"allow_concurrent_calls": True},
}


async def publish(settings: Settings, event: TimerFired) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic("events"), encode(event), key=event.route.encode())
    finally:
        await producer.stop()


async def scheduled_timer(settings: Settings, execution_sid: str) -> ScheduleTimer:
    """The redirect's ScheduleTimer as the processor wrote it to the timers topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        topic = settings.topic("timers")
        tps = [TopicPartition(topic, p) for p in range(settings.event_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.value is None:
                        continue
                    timer = decode(record.value)
                    if isinstance(timer, ScheduleTimer) and timer.execution_sid == execution_sid \
                            and timer.token != "expiry":
                        return timer
        raise AssertionError("the processor scheduled no redirect timer")
    finally:
        await consumer.stop()


async def test_the_scheduler_fires_a_redirect_timeout_into_the_processor_which_ignores_stale_and_duplicate_fires(
        api: Any, settings: Settings) -> None:
    flow_sid = await api.create_flow(FLOW)
    to = f"+1555{uuid.uuid4().int % 10**7:07d}"
    created = await api.start(flow_sid, to=to)
    sid, route = created["sid"], f"{flow_sid}:{to}"

    # Stale: a fire for a wait this execution is not in (another token, another timer).
    await publish(settings, TimerFired(new_sid("TM"), sid, route, "999", time.time(), time.time()))
    await asyncio.sleep(1)
    code, execution = await api.get(f"/v2/Flows/{flow_sid}/Executions/{sid}")
    assert code == 200 and execution["status"] == "active"
    assert [s["name"] for s in await api.steps(flow_sid, sid)] == ["incomingRequest"]

    # The real timer: the cluster's scheduler fires it after 3 s, the processor takes ``timeout``.
    ended = await api.wait_ended(flow_sid, sid, timeout=60)
    steps = await api.steps(flow_sid, sid)
    assert [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps] == [
        ("incomingRequest", "Trigger", "away"), ("timeout", "away", "timed_out"), ("next", "timed_out", "Ended")]
    timer = await scheduled_timer(settings, sid)

    # Duplicate: the same fire again (a scheduler crash between the fire and its tombstone does this).
    await publish(settings, TimerFired(timer.timer_id, sid, route, timer.token, timer.due_at, time.time()))
    await asyncio.sleep(2)
    assert await api.steps(flow_sid, sid) == steps
    code, after = await api.get(f"/v2/Flows/{flow_sid}/Executions/{sid}")
    assert code == 200 and after == ended
