"""Commit only what is done: track in-flight offsets per partition, commit below the oldest.

Requests run concurrently and finish out of order; committing the highest
finished offset would lose an unfinished older one in a crash. The committable
offset of a partition is the oldest offset still in flight (or one past the
newest seen when nothing is in flight).
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
        self._in_flight.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: P, offset: int) -> None:
        self._in_flight.get(partition, set()).discard(offset)

    def committable(self) -> dict[P, int]:
        """Offsets to commit now (only those that moved since the last call)."""
        out: dict[P, int] = {}
        for partition, nxt in self._next.items():
            pending = self._in_flight.get(partition)
            offset = min(pending) if pending else nxt
            if self._committed.get(partition) != offset:
                out[partition] = offset
        return out

    def mark_committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partition: P) -> None:
        self._in_flight.pop(partition, None)
        self._next.pop(partition, None)
        self._committed.pop(partition, None)

    @property
    def in_flight(self) -> int:
        return sum(len(v) for v in self._in_flight.values())
