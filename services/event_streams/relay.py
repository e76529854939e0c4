"""The Event Streams relay: read the ``history`` topic, publish Studio's events to ``studio-events`` and the sinks.

It runs inside each http-worker process (consumer group
``switchboard-event-streams``, so replicas share the history partitions) when
``SWITCHBOARD_EVENT_STREAMS`` is on or a sink is configured (``Settings.streams_events``). For every fetched batch of
history records it produces their events to ``{prefix}studio-events`` (key =
execution sid, so an execution's events stay in order on one partition;
value = one CloudEvent as JSON), waits for the broker's acks, delivers them to
the webhook sinks, and only then commits the history offsets: at least once —
after a crash a batch may be published again, with the same event ids.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import metrics
from shared.kafka import make_producer
from shared.settings import Settings

from .cloudevents import events_of_record
from .sinks import WebhookSinks

__all__ = ["GROUP_ID", "TOPIC", "EventStreamRelay"]

log = logging.getLogger(__name__)

GROUP_ID = "switchboard-event-streams"
TOPIC = "studio-events"


class EventStreamRelay:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.sinks: WebhookSinks | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            settings.topic("history"), bootstrap_servers=settings.kafka_bootstrap, group_id=GROUP_ID,
            client_id="switchboard-event-streams", enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=200, max_poll_records=500)
        self.producer = make_producer(settings, "switchboard-event-streams", linger_ms=5)
        await self.producer.start()
        await self.consumer.start()
        if settings.event_stream_sinks:
            self.session = aiohttp.ClientSession(trust_env=False)
            self.sinks = WebhookSinks(settings.event_stream_sinks, settings.auth_token, self.session)

    async def run(self) -> None:
        topic = self.settings.topic(TOPIC)
        while not self._stopping.is_set():
            try:
                await self._relay_once(topic)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the stream must never take the http-worker down with it
                log.exception("event stream relay failed; going back to the last committed offsets")
                await asyncio.sleep(1.0)
                await self._rewind()

    async def _relay_once(self, topic: str) -> None:
        """One fetch: publish its events, deliver them to the sinks, then commit (at least once)."""
        assert self.consumer is not None and self.producer is not None
        batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
        if not batches:
            return
        events: list[dict[str, Any]] = []
        for records in batches.values():
            for record in records:
                events.extend(events_of_record(record.value, self.settings.account_sid, self.settings.public_base_url))
        deliveries = [await self.producer.send(topic, orjson.dumps(event),
                                               key=str(event["data"]["execution_sid"]).encode()) for event in events]
        for delivery in deliveries:
            await metrics.watch_delivery(TOPIC, delivery)
        metrics.EVENT_STREAM_EVENTS.labels("kafka", "published").inc(len(events))
        if self.sinks is not None and events:
            await self.sinks.deliver(events)
        await self.consumer.commit()

    async def _rewind(self) -> None:
        """Fetch again from the committed offsets, so a failed fetch's events are not skipped."""
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

    async def stop(self) -> None:
        self._stopping.set()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.session is not None:
            await self.session.close()
