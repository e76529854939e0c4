"""Work-arounds for faust-streaming behaviour that would break "nothing lost".

The first was found by the crash test (tests/integration/test_crash_recovery.py), which SIGKILLs the
processor mid-run: it showed up as executions stranded "active" after a restart. The second was found
reading faust's code while chasing the first.

**Unread partitions skipped.** Around a rebalance faust drops records it has already fetched (flow
stopped, generation changed, partition paused) and relies on seeking every partition back to its
committed offset afterwards. aiokafka's ``seek_to_committed`` only seeks partitions whose committed
offset is above 0, so a partition nobody has committed yet (a processor killed within its first commit
interval) kept the position past the dropped records: those events were never processed, and the
route rows they should have written were simply missing. ``seek_unread_to_beginning`` seeks such
partitions to their first offset, which is what ``auto_offset_reset=earliest`` promises.

**Table writes left in the producer buffer.**
faust writes table changes to the changelog through a producer *buffer* (``send_soon``). Before
committing offsets the consumer flushes the producer, but ``ProducerBuffer.flush`` gives up after
waiting 0.1 s for one message (``flush_atmost``), and a message already taken from the buffer but
not yet handed to aiokafka is not counted at all. Under load the commit could then pass an event
whose table write was still in the buffer, and a crash right after would lose the write for good.
``drain_buffer_before_commit`` makes the flush wait until the buffer is really empty, and keeps the
buffer's sending task alive when one hand-over fails (it used to end the task, after which every
table write stayed in the buffer while offsets kept being committed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

__all__ = ["drain_buffer_before_commit", "seek_unread_to_beginning"]

log = logging.getLogger(__name__)


def drain_buffer_before_commit(app: faust.App) -> None:
    buffer: Any = app.producer.buffer
    in_flight = 0
    original_send = buffer._send_pending  # noqa: SLF001 - bound before the buffer's task starts
    original_flush = buffer.flush

    async def send_pending(fut: Any) -> None:
        # One failed hand-over (e.g. topic metadata not there yet right after a restart) used to
        # end the buffer's task for good, silently parking every later table write. Retry instead.
        nonlocal in_flight
        in_flight += 1
        try:
            while True:
                try:
                    await original_send(fut)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - logged, retried: a table write must not be dropped
                    log.warning("changelog hand-over failed; retrying", exc_info=True)
                    await asyncio.sleep(0.2)
        finally:
            in_flight -= 1

    async def flush() -> None:
        while (buffer.size or in_flight) and not buffer.should_stop:
            await original_flush()
            await asyncio.sleep(0.001)

    buffer._send_pending = send_pending  # noqa: SLF001
    buffer.flush = flush


def seek_unread_to_beginning(app: faust.App, topics: set[str]) -> None:
    """After faust's seek to committed offsets, seek ``topics``' partitions with no commit yet to their start."""
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]  # noqa: SLF001 - faust seeks through it
    original = thread.seek_to_committed

    async def seek_to_committed() -> Any:
        committed = await original()
        unread = [tp for tp, offset in committed.items() if tp.topic in topics and not offset]
        if unread:
            log.info("seeking partitions with no committed offset to their start",
                     extra={"fields": {"partitions": sorted(tp.partition for tp in unread)}})
            await thread.seek_to_beginning(*unread)
        return committed

    thread.seek_to_committed = seek_to_committed
