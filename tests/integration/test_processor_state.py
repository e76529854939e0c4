"""Processor state is bounded by what is active: the row of a route whose executions ended is deleted.

Through the real pipeline: executions that end at once, each to a new contact; once their events are committed
and their partition sees another event, their rows are tombstoned in the ``routes`` changelog. The contacts then
behave like new ones, and ending an ended execution over REST still answers it (from history).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.settings import Settings
from shared.topics import changelog_topics
from tests.integration.widget_flows import definition, phone, w

FLOW = definition("done", w("done", "set-variables", {"next": None}, variables=[{"key": "x", "value": "1"}]))
EXECUTIONS = 16


async def _rows(settings: Settings) -> dict[bytes, bool]:
    """Each key of the routes changelog: is its last record a value (the row is stored)?"""
    topic = changelog_topics(settings)[0]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.event_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        last: dict[bytes, bool] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    last[record.key] = record.value is not None
        return last
    finally:
        await consumer.stop()


async def _until_answered(api: Any, flow_sid: str, timeout: float = 90) -> None:
    """Start throwaway executions until one is answered: an earlier test may have left the group rebalancing."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        code, body = await api.post(f"/v2/Flows/{flow_sid}/Executions", {"To": phone(), "From": "+15559990000"})
        if code == 201:
            return
        assert code == 503 and asyncio.get_running_loop().time() < deadline, body


async def test_the_rows_of_routes_whose_executions_ended_are_deleted(api: Any, settings: Settings) -> None:
    flow_sid = await api.create_flow(FLOW, name="state")
    await _until_answered(api, flow_sid)
    contacts = [phone() for _ in range(EXECUTIONS)]
    started = await asyncio.gather(*(api.start(flow_sid, to=c) for c in contacts))
    for execution in started:
        await api.wait_ended(flow_sid, execution["sid"])
    keys = {f"{flow_sid}:{c}".encode() for c in contacts}
    rows: dict[bytes, bool] = {}
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        # Rows go at the next event of their partition after the commit (1 s) has passed them: keep events coming.
        await asyncio.gather(*(api.start(flow_sid) for _ in range(8)))
        rows = await _rows(settings)
        if not any(rows.get(k) for k in keys):
            break
        await asyncio.sleep(1.0)
    assert keys <= set(rows), "every route was written"
    assert [k for k in keys if rows[k]] == [], "rows still stored for routes with nothing active"

    # The contact is like a new one; ending an ended execution answers it from history.
    again = await api.start(flow_sid, to=contacts[0])
    assert (await api.wait_ended(flow_sid, again["sid"]))["status"] == "ended"
    code, body = await api.post(f"/v2/Flows/{flow_sid}/Executions/{started[1]['sid']}", {"Status": "ended"})
    assert (code, body["status"]) == (200, "ended")
