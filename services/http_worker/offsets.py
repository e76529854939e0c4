"""Commit only what is done: track in-flight offsets per partition, commit below the oldest.

Requests run concurrently and finish out of order; committing the highest
finished offset would lose an unfinished older one in a crash. The committable
offset of a partition (Kafka's "next offset to read") is the oldest offset
still in flight, or one past the newest started offset when nothing is in flight.
Pure bookkeeping: no I/O, no Kafka types required.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

P = TypeVar("P", bound=Hashable)


@dataclass
class OffsetTracker(Generic[P]):
    _in_flight: dict[P, set[int]] = field(default_factory=dict)
    _next: dict[P, int] = field(default_factory=dict)
    _committed: dict[P, int] = field(default_factory=dict)

    def started(self, partition: P, offset: int) -> None:
        """``offset`` of ``partition`` is now being worked on."""
        self._in_flight.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: P, offset: int) -> None:
        """``offset`` is done (its result is durably produced). Unknown offsets are ignored."""
        pending = self._in_flight.get(partition)
        if pending is not None:
            pending.discard(offset)

    def position(self, partition: P) -> int | None:
        """The offset that may be committed for ``partition`` now (None if nothing was started)."""
        nxt = self._next.get(partition)
        if nxt is None:
            return None
        pending = self._in_flight.get(partition)
        return min(pending) if pending else nxt

    def committable(self) -> dict[P, int]:
        """Offsets to commit now: only those that moved since the last :meth:`mark_committed`."""
        out: dict[P, int] = {}
        for partition in self._next:
            offset = self.position(partition)
            if offset is not None and self._committed.get(partition) != offset:
                out[partition] = offset
        return out

    def mark_committed(self, offsets: dict[P, int]) -> None:
        """Record a successful commit (only for partitions still tracked)."""
        for partition, offset in offsets.items():
            if partition in self._next:
                self._committed[partition] = offset

    def forget(self, partition: P) -> None:
        """The partition was revoked: drop everything known about it."""
        self._in_flight.pop(partition, None)
        self._next.pop(partition, None)
        self._committed.pop(partition, None)

    def pending(self, partition: P) -> int:
        """How many offsets of ``partition`` are in flight."""
        return len(self._in_flight.get(partition, ()))

    @property
    def in_flight(self) -> int:
        return sum(len(v) for v in self._in_flight.values())
