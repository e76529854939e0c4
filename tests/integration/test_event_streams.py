"""Event Streams end to end: every execution and step change of a real run, as Studio's CloudEvents, on the
``studio-events`` topic and at a signed webhook sink (the local stand-in checks the signature)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import definition, phone, w

TYPES = ["com.twilio.studio.flow.execution.started", "com.twilio.studio.flow.step.ended",
         "com.twilio.studio.flow.step.ended", "com.twilio.studio.flow.execution.ended"]


async def sink_events(messages_api: MessagesApi, sid: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = messages_api.stream_events(sid)
        if len({e["id"] for e in found}) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} events for {sid}, got {found}")
        await asyncio.sleep(0.1)


async def test_an_executions_events_reach_the_topic_and_the_sink(api: Any, settings: Any,
                                                                 messages_api: MessagesApi) -> None:
    flow_sid = await api.create_flow(definition(
        "set", w("set", "set-variables", {"next": None}, variables=[{"key": "x", "value": "1"}])))
    contact = phone()
    created = await api.start(flow_sid, to=contact)
    sid = created["sid"]
    received = await sink_events(messages_api, sid, 4)
    unique = list({e["id"]: e for e in received}.values())  # at least once: a repeat has the same id
    assert [e["type"] for e in unique] == TYPES
    started, trigger, step, ended = unique
    assert started["data"]["contact_channel_address"] == contact and started["data"]["flow_sid"] == flow_sid
    assert (trigger["data"]["name"], step["data"]["transitioned_from"]) == ("incomingRequest", "set")
    assert ended["data"]["ended_reason"] == "FLOW_END" and ended["specversion"] == "1.0"

    consumer = AIOKafkaConsumer(settings.topic("studio-events"), bootstrap_servers=settings.kafka_bootstrap,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        on_topic: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len({e["id"] for e in on_topic}) < 4 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                on_topic.extend(e for r in records if r.key == sid.encode()
                                and (e := orjson.loads(r.value))["data"]["execution_sid"] == sid)
    finally:
        await consumer.stop()
    assert [e["id"] for e in {e["id"]: e for e in on_topic}.values()] == [e["id"] for e in unique]
