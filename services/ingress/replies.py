"""The ingress's reply channel: one partition of ``replies`` that only this instance reads.

A request that needs the processor's answer registers a reply id, publishes its
event naming this partition, and awaits the future. Replies for ids nobody waits
for (the waiter gave up) are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.messages import DecodeError, Reply, decode

__all__ = ["ReplyChannel"]

log = logging.getLogger(__name__)


@dataclass
class ReplyChannel:
    consumer: AIOKafkaConsumer
    topic: str
    partition: int
    _waiting: dict[str, asyncio.Future[Reply]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        tp = TopicPartition(self.topic, self.partition)
        self.consumer.assign([tp])
        await self.consumer.seek_to_end(tp)
        await self.consumer.position(tp)  # resolve now so nothing published after this point is skipped
        self.ready.set()

    def expect(self) -> tuple[str, asyncio.Future[Reply]]:
        reply_id = uuid.uuid4().hex
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[reply_id] = future
        return reply_id, future

    def forget(self, reply_id: str) -> None:
        self._waiting.pop(reply_id, None)

    async def run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batches.values():
                for record in records:
                    try:
                        reply = decode(record.value or b"")
                    except DecodeError:
                        continue
                    if not isinstance(reply, Reply):
                        continue
                    future = self._waiting.pop(reply.reply_id, None)
                    if future is not None and not future.done():
                        future.set_result(reply)
