"""Replies leave the processor on a producer of their own, with no linger.

A webhook (a caller on the line) or a REST create waits for its reply, so every millisecond a reply sits
in a producer batch is a millisecond somebody waits. faust's producer lingers
(``SWITCHBOARD_PROCESSOR_LINGER_MS``) to batch the many table, history and command writes; replies,
one per request, gain nothing from that and go out at once here. So do the HTTP requests a waiting
webhook depends on (a Make HTTP Request before a call's first TwiML): the caller hears nothing until
their result is back.

"Nothing lost" is kept: faust flushes its producer before it commits offsets, and the reply producer is
flushed at that same moment, so no committed event has its reply still in memory (the replay that
re-sends a crashed event's outputs only covers events above the committed offset).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from shared import metrics
from shared.kafka import make_producer
from shared.settings import Settings

__all__ = ["ReplySender", "install_reply_sender"]


class ReplySender:
    """One linger-free aiokafka producer for replies and the requests a waiting webhook depends on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Any = None  # aiokafka clients must be made inside the running loop: see start()
        self._started = asyncio.Event()
        self._stopped = False
        self._prefix = settings.topic_prefix

    async def start(self) -> None:
        self._producer = make_producer(self._settings, "switchboard-processor-replies", linger_ms=0)
        await self._producer.start()
        self._started.set()

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> Any:
        """Hand one record to the producer; returns its delivery future (counted in produce errors).

        With ``partition=None`` the key picks the partition exactly as faust's producer would (both use
        aiokafka's default murmur2 partitioner), so a record keeps its key's partition whichever sends it.
        """
        await self._started.wait()
        delivery = await self._producer.send(topic, value, key=key, partition=partition)
        return metrics.watch_delivery(topic.removeprefix(self._prefix), delivery)

    async def flush(self) -> None:
        if self._started.is_set() and not self._stopped:
            await self._producer.flush()

    async def stop(self) -> None:
        if self._started.is_set() and not self._stopped:
            self._stopped = True
            await self._producer.stop()  # sends what is still buffered


def install_reply_sender(app: faust.App, settings: Settings) -> ReplySender:
    """Create the sender, start it with the app, flush it whenever faust flushes, stop it on shutdown."""
    sender = ReplySender(settings)
    producer: Any = app.producer
    faust_flush = producer.flush

    async def flush() -> None:
        await faust_flush()
        await sender.flush()

    producer.flush = flush  # the consumer calls app.producer.flush() right before every commit

    @app.task
    async def start_reply_sender() -> None:
        await sender.start()

    # Stopped only once the agent and faust's producer have stopped (mode's on_shutdown runs after the
    # app's children): an event still being handled during shutdown can then still send its reply.
    faust_on_shutdown = app.on_shutdown

    async def on_shutdown() -> None:
        await sender.stop()
        await faust_on_shutdown()

    app.on_shutdown = on_shutdown  # type: ignore[method-assign]
    return sender
