"""The in-memory index of pending timers: a heap ordered by due time with lazy deletion.

Pure data structure; the service feeds it records and asks what is due.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["TimerIndex"]


@dataclass
class TimerIndex:
    # timer id -> (due time, partition, payload). The heap may hold stale entries; the dict decides.
    _timers: dict[bytes, tuple[float, int, bytes]] = field(default_factory=dict)
    _heap: list[tuple[float, bytes]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._timers)

    def put(self, timer_id: bytes, due: float, partition: int, payload: bytes) -> None:
        self._timers[timer_id] = (due, partition, payload)
        heapq.heappush(self._heap, (due, timer_id))

    def cancel(self, timer_id: bytes) -> bool:
        return self._timers.pop(timer_id, None) is not None

    def drop_partitions(self, partitions: set[int]) -> None:
        self._timers = {k: v for k, v in self._timers.items() if v[1] not in partitions}
        self._heap = [(due, k) for k, (due, _, _) in self._timers.items()]
        heapq.heapify(self._heap)

    def next_due(self) -> float | None:
        while self._heap:
            due, timer_id = self._heap[0]
            current = self._timers.get(timer_id)
            if current is not None and current[0] == due:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: float, limit: int = 1000) -> list[tuple[bytes, float, bytes]]:
        out: list[tuple[bytes, float, bytes]] = []
        while self._heap and len(out) < limit:
            due, timer_id = self._heap[0]
            if due > now:
                break
            heapq.heappop(self._heap)
            current = self._timers.get(timer_id)
            if current is None or current[0] != due:
                continue
            del self._timers[timer_id]
            out.append((timer_id, due, current[2]))
        return out
