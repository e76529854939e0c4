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
``drain_buffer_before_commit`` makes the flush wait until every message buffered before it began has
been handed over (not until the buffer is empty: under load that never happens and commits starved),
and keeps the buffer's sending task alive when one hand-over fails (it used to end the task, after
which every table write stayed in the buffer while offsets kept being committed).

**Failed commits recorded as done.** ``Consumer._commit_offsets`` updates its ``_committed_offset``
map whether or not the broker accepted the commit (a commit refused because the group already
rebalanced returns False and is recorded all the same). That figure is fine for what faust uses it
for, but not for deleting a route's row (``route_sweep.py``): the next owner of the partition would
get those events again and apply them to an empty row. ``track_confirmed_commits`` keeps the offsets
of the commits the broker did accept, and resets a partition's figure to what the broker says
whenever faust seeks to the committed offsets after an assignment (so a figure from an earlier
ownership of a partition never outlives it).

**Producer not idempotent.** faust asks aiokafka for ``enable_idempotence`` only inside transactions
(``Producer._settings_extra``); ``producer_acks=-1`` alone leaves retries free to write a batch twice or out of
order when a broker dies between writing a batch and acknowledging it (found reading faust's settings for
the fault suite, ``make faults``, whose broker kills make that window real). ``idempotent_producer`` asks for
it always, as every other producer here does (``shared/kafka.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import faust

__all__ = [
    "ConfirmedCommits", "drain_buffer_before_commit", "idempotent_producer", "seek_unread_to_beginning",
    "track_confirmed_commits",
]

log = logging.getLogger(__name__)


def idempotent_producer(app: faust.App) -> None:
    """Make faust's producer idempotent with acks=all (it is created lazily, after this runs)."""
    producer: Any = app.producer
    original = producer._settings_extra  # noqa: SLF001 - faust's only hook for producer options

    def settings_extra() -> dict[str, Any]:
        return {**original(), "acks": "all", "enable_idempotence": True}

    producer._settings_extra = settings_extra  # noqa: SLF001


def drain_buffer_before_commit(app: faust.App) -> None:
    buffer: Any = app.producer.buffer
    put, handed = 0, 0  # messages put into the buffer / handed over to the producer, in order (one FIFO task)
    progress = asyncio.Event()  # set after every hand-over
    original_put = buffer.put
    original_send = buffer._send_pending  # noqa: SLF001 - bound before the buffer's task starts

    def count_put(fut: Any) -> None:
        nonlocal put
        put += 1
        original_put(fut)

    async def send_pending(fut: Any) -> None:
        # One failed hand-over (e.g. topic metadata not there yet right after a restart) used to
        # end the buffer's task for good, silently parking every later table write. Retry instead.
        nonlocal handed
        while True:
            try:
                await original_send(fut)
                handed += 1
                progress.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged, retried: a table write must not be dropped
                log.warning("changelog hand-over failed; retrying", exc_info=True)
                await asyncio.sleep(0.2)

    async def flush() -> None:
        # Wait for what was buffered when the commit began, not for an empty buffer (faust's own flush
        # waits for that too): under sustained load the agent refills it all the time, and waiting for
        # empty starved every commit until the load paused (seen as route rows never dropped and a
        # replay window as long as the burst).
        target = put
        while handed < target and not buffer.should_stop:
            progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), timeout=0.1)

    buffer.put = count_put
    buffer._send_pending = send_pending  # noqa: SLF001
    buffer.flush = flush


class ConfirmedCommits:
    """The last offset per partition whose commit the broker accepted (events below it never come back)."""

    def __init__(self) -> None:
        self._offsets: dict[tuple[str, int], int] = {}

    def confirm(self, offsets: Mapping[Any, int]) -> None:
        for tp, offset in offsets.items():
            key = (tp.topic, tp.partition)
            # Accepted commits of one group only move forward; never let a late answer move one back.
            self._offsets[key] = max(offset, self._offsets.get(key, -1))

    def reset(self, committed: Mapping[Any, int | None]) -> None:
        """The broker's committed offsets, read at an assignment (0 or None: nothing committed yet)."""
        for tp, offset in committed.items():
            self._offsets[(tp.topic, tp.partition)] = offset if offset else -1

    def get(self, tp: Any) -> int:
        """The confirmed committed offset of ``tp``; -1 if none is known (nothing may be dropped then)."""
        return self._offsets.get((tp.topic, tp.partition), -1)


def track_confirmed_commits(app: faust.App) -> ConfirmedCommits:
    consumer: Any = app.consumer
    original = consumer._commit  # noqa: SLF001 - the one call that tells whether the broker took the commit
    confirmed = ConfirmedCommits()

    async def commit(offsets: Mapping[Any, int]) -> bool:
        # Only partitions still assigned are committed (the driver filters the same way).
        assigned = {tp: offset for tp, offset in offsets.items() if tp in consumer.assignment()}
        accepted = bool(await original(offsets))
        if accepted:
            confirmed.confirm(assigned)
        return accepted

    thread: Any = consumer._thread  # noqa: SLF001 - faust seeks through it
    original_seek = thread.seek_to_committed

    async def seek_to_committed() -> Any:
        committed = await original_seek()
        confirmed.reset(committed)
        return committed

    consumer._commit = commit  # noqa: SLF001
    thread.seek_to_committed = seek_to_committed
    return confirmed


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
