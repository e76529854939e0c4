"""Events faust skipped: found by their offsets, read back and handled before the event after them.

The crash test (tests/integration/test_crash_recovery.py) showed executions stranded after a restart
with the very HttpResult they waited for sitting on the events topic, never handled. faust drops
records it has fetched in some states (a partition not active at that moment, flow stopped); the
consumer's position has moved past them, and when the next record arrives faust's gap bookkeeping
(meant for compacted topics and transaction markers) counts the skipped offsets as *acknowledged*,
so they are committed and lost for good.

Our events topic is neither compacted nor transactional: its offsets are contiguous, so within one
consumer generation the agent must see every offset of a partition in order. ``GapDetector`` notes
the last offset seen per partition and says which offsets were skipped; the agent reads those
records back with a plain reader and handles them first (``read_range``). Handling a record twice
is harmless (the state machine recognises replays by offset), so erring towards re-reading is safe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["GapDetector", "read_range"]


@dataclass
class GapDetector:
    #: partition -> (consumer generation, last offset the agent saw there)
    _last: dict[Any, tuple[int, int]] = field(default_factory=dict)

    def missing(self, tp: Any, generation: int, offset: int, committed: int) -> tuple[int, int] | None:
        """The offsets ``[start, end)`` skipped before ``offset``, or None; then note ``offset`` as seen.

        The first record of a partition in a generation should be at the committed offset (faust seeks
        there after every assignment; ``committed`` < 0: nothing committed, so the topic's start).
        A record below what was expected (faust sought back) is a replay, never a gap.
        """
        last = self._last.get(tp)
        expected = last[1] + 1 if last is not None and last[0] == generation else max(committed, 0)
        self._last[tp] = (generation, offset)
        return (expected, offset) if offset > expected else None


async def read_range(reader: AIOKafkaConsumer, topic: str, partition: int, start: int, end: int,
                     timeout: float = 30.0) -> list[Any]:
    """The records of one partition at offsets ``[start, end)`` (those still retained), in order."""
    tp = TopicPartition(topic, partition)
    reader.assign([tp])
    reader.seek(tp, start)
    found: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        batches = await reader.getmany(tp, timeout_ms=200, max_records=1000)
        for record in batches.get(tp, []):
            if start <= record.offset < end:
                found.append(record)
        if await reader.position(tp) >= end:
            break
    return found
