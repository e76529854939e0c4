"""What the ingress's handlers share, built once in the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiokafka import AIOKafkaProducer

from shared import metrics
from shared.clock import Clock
from shared.flow_catalog import FlowCatalog
from shared.messages import Message, encode
from shared.settings import Settings

from .history_store import HistoryStore
from .replies import ReplyChannel
from .resources import Urls

__all__ = ["DEPS", "Deps"]


@dataclass
class Deps:
    settings: Settings
    producer: AIOKafkaProducer
    replies: ReplyChannel
    catalog: FlowCatalog
    history: HistoryStore
    clock: Clock
    urls: Urls
    stopping: bool = False
    #: The history topic's end offsets now (partition -> offset): how far this replica's copy must have
    #: applied before "not in the history" means "never created" (idempotent creates); None: do not wait.
    history_ends: Callable[[], Awaitable[dict[int, int]]] | None = None

    async def publish(self, topic: str, key: str, message: Message | None) -> int:
        """Publish and wait for the broker's acknowledgement (the caller answers only after that); the offset."""
        value = encode(message) if message is not None else None
        try:
            metadata = await self.producer.send_and_wait(self.settings.topic(topic), value, key=key.encode())
        except Exception:
            metrics.KAFKA_PRODUCE_ERRORS.labels(topic).inc()
            raise
        return int(metadata.offset)


DEPS: web.AppKey[Deps] = web.AppKey("deps", Deps)
