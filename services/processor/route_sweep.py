"""When a route's table row can go, so the processor's state is bounded by what is active.

A route's row (``state.py``) outlives its last execution for one reason only: replay
protection (``replay.py``). Its ``applied`` offset tells a replayed event from a new one
and its ``outbox`` holds the outputs of events not yet committed. Both matter only for
events Kafka may deliver again, i.e. at offsets at or above the partition's *committed*
offset. So a row with no active execution whose ``applied`` offset is below the committed
offset protects nothing any more: it is deleted (a table delete, so a changelog tombstone).

The committed offset must be one the broker really accepted (``ConfirmedCommits`` in
``faust_fixes.py``): faust records a commit that failed in a rebalance as done, and a row
dropped on that figure would let the next owner apply its events again to an empty row.

Rows are not scanned for this. A row written with no active execution is noted as a
candidate ``(partition, key, applied offset)``; when its partition's committed offset has
passed that offset the candidate is due, and the agent re-reads the row and deletes it if it
is still droppable (a later event may have re-used it: then it is active, or idle again with a
newer offset and a newer candidate). Deletes happen while the agent handles an event of the
same partition (faust writes a table change to the changelog partition of the current event),
so an idle partition keeps its last ~second of ended routes until its next event: bounded by
the work in flight, not by the work done.

Candidates live in memory, so a restart must find the idle rows again. Recovery hands every
changelog record it reads to ``idle_applied`` (a tombstone drops the candidate): with the
``memory://`` store that is the whole changelog. With ``rocksdb://`` recovery reads only the tail
after the local files, so the agent also scans each partition's local rows once per process, at
the partition's first event (about 0.15 s per 125,000 rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from .state import ExecutionState, RouteState

__all__ = ["SweepCandidates", "droppable", "idle", "idle_applied"]

#: How a stored row of a route with no active execution starts and ends (``encode_route_record``
#: writes ``active`` first and ``executions`` last), so recovery can skip busy rows without decoding them.
_IDLE_HEAD = b'{"active":[]'
_IDLE_TAIL = b'"executions":{}}'


def idle(route: RouteState, executions: Mapping[str, ExecutionState]) -> bool:
    """No execution of the route is active (its row is kept only for replay protection)."""
    return not route.active and not executions


def droppable(route: RouteState, executions: Mapping[str, ExecutionState], committed: int) -> bool:
    """Can the row go? Idle, and every event it applied is below the (confirmed) committed offset."""
    return committed >= 0 and idle(route, executions) and route.applied < committed


def idle_applied(value: bytes | None) -> int | None:
    """The ``applied`` offset of a stored row with no active execution; None for a busy row or a tombstone."""
    if not value or not value.startswith(_IDLE_HEAD) or not value.endswith(_IDLE_TAIL):
        return None
    applied = orjson.loads(value).get("applied", -1)
    return applied if isinstance(applied, int) else -1


@dataclass
class SweepCandidates:
    """Rows that may be droppable once their partition's committed offset passes their ``applied`` offset.

    Per partition, key -> applied offset in the order noted (events are handled in offset order,
    so that is roughly offset order); a key noted again moves to the end with its new offset.
    """

    _pending: dict[int, dict[bytes, int]] = field(default_factory=dict)

    def note(self, partition: int, key: bytes, applied: int) -> None:
        """The row of ``key`` was stored idle at ``applied`` (an older figure never replaces a newer one)."""
        keys = self._pending.setdefault(partition, {})
        keys[key] = max(keys.pop(key, -1), applied)

    def forget(self, partition: int, key: bytes) -> None:
        keys = self._pending.get(partition)
        if keys is not None:
            keys.pop(key, None)

    def drop(self, partition: int) -> None:
        """Forget a partition this process no longer owns (its next owner finds its idle rows itself)."""
        self._pending.pop(partition, None)

    def due(self, partition: int, committed: int, limit: int = 256) -> list[bytes]:
        """Take up to ``limit`` keys noted with an offset below ``committed``, oldest first.

        Stops at the first key that is not due yet; one noted slightly out of order behind it waits
        until that one is due (it is never lost). ``limit`` caps the work done between two events.
        """
        keys = self._pending.get(partition)
        if not keys or committed < 0:
            return []
        taken: list[bytes] = []
        for key, applied in keys.items():
            if applied >= committed or len(taken) >= limit:
                break
            taken.append(key)
        for key in taken:
            del keys[key]
        return taken

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._pending.values())
