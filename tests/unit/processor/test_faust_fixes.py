"""The commit's flush of faust's changelog buffer: everything buffered before it, and nothing it has to wait out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from services.processor.faust_fixes import drain_buffer_before_commit


class FakeBuffer:
    """faust's ProducerBuffer as far as the fix touches it: a FIFO queue handed over by one task."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.sent: list[Any] = []
        self.should_stop = False
        self.failures = 0

    def put(self, fut: Any) -> None:
        self.queue.put_nowait(fut)

    async def _send_pending(self, fut: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("no metadata yet")
        await asyncio.sleep(0.001)
        self.sent.append(fut)

    async def flush(self) -> None:  # replaced by the fix
        raise AssertionError("faust's own flush waits for an empty buffer")

    async def run(self) -> None:
        while True:
            await self._send_pending(await self.queue.get())


async def test_the_flush_waits_for_every_message_buffered_before_it_even_while_more_keep_coming() -> None:
    buffer = FakeBuffer()
    drain_buffer_before_commit(SimpleNamespace(producer=SimpleNamespace(buffer=buffer)))  # type: ignore[arg-type]
    task = asyncio.create_task(buffer.run())

    async def agent() -> None:  # sustained load: the buffer is never empty
        n = 100
        while True:
            buffer.put(n)
            n += 1
            await asyncio.sleep(0.0005)

    load = asyncio.create_task(agent())
    try:
        for n in range(5):
            buffer.put(n)
        await asyncio.wait_for(buffer.flush(), timeout=2.0)  # used to wait until the load stopped
        assert set(range(5)) <= set(buffer.sent)
    finally:
        load.cancel()
        task.cancel()


async def test_a_failed_hand_over_is_retried_and_the_flush_waits_for_it() -> None:
    buffer = FakeBuffer()
    buffer.failures = 1
    drain_buffer_before_commit(SimpleNamespace(producer=SimpleNamespace(buffer=buffer)))  # type: ignore[arg-type]
    task = asyncio.create_task(buffer.run())
    try:
        buffer.put("row")
        await asyncio.wait_for(buffer.flush(), timeout=2.0)
        assert buffer.sent == ["row"]
    finally:
        task.cancel()
