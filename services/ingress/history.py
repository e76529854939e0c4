"""The read model behind the Executions and Steps API: the ``history`` topic, held in memory.

The processor publishes, per execution and sprint, one ``HistoryBatch`` (key =
execution sid) with the steps that sprint took and the execution's snapshot;
the ingress itself publishes tombstones (key = execution or step sid) for
deletes and retention. Single ``ExecutionRecord``/``StepRecord`` messages are
still understood. Every ingress instance reads the
whole topic into this store and answers every read from it, so reads never
touch the processor (no cost on the hot path) and work with any number of
processor replicas.

Correctness rules (the topic is at-least-once and spread over partitions):

* **Snapshots only move forward.** Snapshots of one execution share a key, so
  they arrive in order, but a processor replaying events after a crash may
  resend older ones. A snapshot replaces the held one only if it is not older
  by ``(ended, step_count, date_updated)``; an ended execution never becomes
  active again.
* **Steps may arrive before or after their execution's snapshot** (other keys,
  other partitions). A step without its execution is held as an *orphan* and
  adopted when the snapshot arrives; an orphan still alone after
  ``orphan_grace`` is tombstoned by the janitor.
* **Deleted stays deleted.** A tombstone for an execution drops it and its
  steps; for ``deleted_memory`` seconds afterwards any record of that execution
  (or of a deleted flow) that still shows up — a late step from another
  partition, a replayed snapshot — is dropped and queued for another tombstone.
* **Retention.** An ended execution is visible for ``retention`` seconds after
  it ended; after that reads treat it as gone at once, and the janitor
  publishes tombstones for its steps and then for it (steps first, so a crash
  half-way leaves the execution to retry from). Every ingress replica runs a
  janitor, each ``stagger × instance`` seconds later than instance 0; by then
  the earlier replica's tombstones have normally been read back and there is
  nothing left to do. Tombstones are idempotent, so a duplicate costs one
  small record and nothing else.

Memory: per execution about 200 bytes of index plus its last snapshot as
compact JSON bytes; per step about 150 bytes plus its JSON. Bodies are decoded
only when a request needs them.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from aiokafka import AIOKafkaConsumer
from sortedcontainers import SortedList

from shared.clock import Clock, SystemClock
from shared.kafka import follow
from shared.messages import DecodeError, ExecutionRecord, HistoryBatch, StepRecord, decode

__all__ = ["ExecutionKey", "HistoryStore", "follow_history", "run_janitor"]

log = logging.getLogger(__name__)

#: Sort key of an execution in its flow's index: newest first, sid breaks ties.
ExecutionKey = tuple[float, str]


@dataclass(slots=True)
class _Execution:
    flow_sid: str
    status: str
    date_created: float
    date_updated: float
    step_count: int
    raw: bytes

    def rank(self) -> tuple[bool, int, float]:
        return (self.status == "ended", self.step_count, self.date_updated)


@dataclass(slots=True)
class _Step:
    index: int
    date_updated: float
    raw: bytes


@dataclass
class HistoryStore:
    """Executions and steps by sid, an index per flow, and the bookkeeping for retention and deletes."""

    retention: float = 30 * 24 * 3600.0
    clock: Clock = field(default_factory=SystemClock)
    orphan_grace: float = 300.0
    deleted_memory: float = 900.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _executions: dict[str, _Execution] = field(default_factory=dict)
    _by_flow: dict[str, SortedList] = field(default_factory=dict)
    _active_by_flow: dict[str, SortedList] = field(default_factory=dict)  # the active subset: Status=active lists
    _steps: dict[str, dict[str, _Step]] = field(default_factory=dict)  # execution sid -> step sid -> step
    _step_owner: dict[str, str] = field(default_factory=dict)
    _expiry: list[tuple[float, str]] = field(default_factory=list)  # heap of (forget at, execution sid)
    _deleted: dict[str, float] = field(default_factory=dict)  # execution or flow sid -> when seen deleted
    _orphans: dict[str, float] = field(default_factory=dict)  # execution sid with steps but no snapshot -> since
    _pending: dict[str, float] = field(default_factory=dict)  # keys to tombstone again -> since
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- applying the topic ------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> None:
        """Apply one record of the history topic (``value=None`` is a tombstone).

        ``offset`` is not needed here: snapshots carry their own order (they only move forward).
        """
        if key is None:
            return
        sid = key.decode()
        if value is None:
            self._tombstone(sid)
        else:
            try:
                record = decode(value)
            except DecodeError:
                log.warning("skipping an undecodable history record %r", key)
                return
            if isinstance(record, HistoryBatch):
                # Steps first: the snapshot that follows counts them.
                for step in record.steps:
                    self._step(StepRecord(**step), orjson.dumps({**step, "kind": StepRecord.kind}))
                if record.execution:
                    execution = ExecutionRecord(**record.execution)
                    self._execution(execution, orjson.dumps({**record.execution, "kind": ExecutionRecord.kind}))
            elif isinstance(record, ExecutionRecord):
                self._execution(record, value)
            elif isinstance(record, StepRecord):
                self._step(record, value)
        self._changed.set()
        self._changed = asyncio.Event()

    def _is_deleted(self, execution_sid: str, flow_sid: str) -> bool:
        return execution_sid in self._deleted or flow_sid in self._deleted

    def _execution(self, record: ExecutionRecord, raw: bytes) -> None:
        # Interned: the sid is shared by the dict key, the index key and the steps' owner entries.
        sid, flow_sid, status = sys.intern(record.sid), sys.intern(record.flow_sid), sys.intern(record.status)
        if self._is_deleted(sid, flow_sid):
            self._pending.setdefault(sid, self.clock.now())
            return
        current = self._executions.get(sid)
        entry = _Execution(flow_sid, status, record.date_created, record.date_updated, record.step_count, raw)
        if current is not None:
            if entry.rank() < current.rank() or (current.status == "ended" and status != "ended"):
                return  # an older snapshot (a replay): keep the newer one
            entry.date_created = current.date_created  # the index key must not move
        else:
            self._by_flow.setdefault(flow_sid, SortedList()).add((-record.date_created, sid))
            self._orphans.pop(sid, None)
        key = (-entry.date_created, sid)
        if status == "active" and current is None:
            self._active_by_flow.setdefault(flow_sid, SortedList()).add(key)
        elif status != "active" and current is not None and current.status == "active":
            _discard(self._active_by_flow, flow_sid, key)
        self._executions[sid] = entry
        if status == "ended" and (current is None or current.status != "ended"):
            heapq.heappush(self._expiry, (record.date_updated + self.retention, sid))

    def _step(self, record: StepRecord, raw: bytes) -> None:
        if self._is_deleted(record.execution_sid, record.flow_sid):
            self._pending.setdefault(record.sid, self.clock.now())
            return
        owner = sys.intern(record.execution_sid)  # one string per execution, however many steps point at it
        steps = self._steps.setdefault(owner, {})
        current = steps.get(record.sid)
        if current is not None and current.date_updated > record.date_updated:
            return
        steps[record.sid] = _Step(record.index, record.date_updated, raw)
        self._step_owner[record.sid] = owner
        if owner not in self._executions:
            self._orphans.setdefault(owner, self.clock.now())

    def _tombstone(self, sid: str) -> None:
        self._pending.pop(sid, None)
        entry = self._executions.pop(sid, None)
        if entry is not None or sid.startswith("FN"):
            self._mark_deleted(sid)
        if entry is not None:
            _discard(self._by_flow, entry.flow_sid, (-entry.date_created, sid))
            _discard(self._active_by_flow, entry.flow_sid, (-entry.date_created, sid))
            self._drop_steps(sid)
            return
        owner = self._step_owner.pop(sid, None)
        if owner is not None:
            steps = self._steps.get(owner, {})
            steps.pop(sid, None)
            if not steps:
                self._steps.pop(owner, None)
                self._orphans.pop(owner, None)

    def _mark_deleted(self, sid: str) -> None:
        self._deleted.pop(sid, None)  # re-insert: the dict stays ordered by time for pruning
        self._deleted[sid] = self.clock.now()

    def _drop_steps(self, execution_sid: str) -> None:
        for step_sid in self._steps.pop(execution_sid, {}):
            self._step_owner.pop(step_sid, None)
        self._orphans.pop(execution_sid, None)

    # -- local writes (read-your-writes and deletes) -----------------------------------------

    def forget_flow(self, flow_sid: str) -> list[str]:
        """A flow was deleted: drop its executions here and return every key to tombstone (steps first)."""
        self._mark_deleted(flow_sid)
        keys: list[str] = []
        for _, sid in list(self._by_flow.get(flow_sid, ())):
            keys.extend(self.keys_of(sid))
            self._tombstone(sid)
        return keys

    def keys_of(self, execution_sid: str) -> list[str]:
        """The history keys of an execution: its steps, then itself (the order tombstones go out)."""
        return [*self._steps.get(execution_sid, {}), execution_sid]

    # -- reads -------------------------------------------------------------------------------

    def _visible(self, entry: _Execution, now: float) -> bool:
        return entry.status != "ended" or entry.date_updated + self.retention > now

    def execution(self, sid: str) -> ExecutionRecord | None:
        entry = self._executions.get(sid)
        if entry is None or not self._visible(entry, self.clock.now()):
            return None
        return _decode(entry.raw, ExecutionRecord)

    def known(self, sid: str) -> bool:
        """Whether this replica has seen the execution at all (held, expired or recently deleted)."""
        return sid in self._executions or sid in self._deleted

    def execution_index(self, flow_sid: str, active_only: bool = False) -> SortedList:
        """The flow's executions (or only its active ones) as sorted keys ``(-date_created, sid)``: newest first."""
        return (self._active_by_flow if active_only else self._by_flow).get(flow_sid) or SortedList()

    def execution_status(self, sid: str) -> str | None:
        """The status of a visible execution (cheap: no decoding), else ``None``."""
        entry = self._executions.get(sid)
        if entry is None or not self._visible(entry, self.clock.now()):
            return None
        return entry.status

    def executions_of(self, flow_sid: str) -> Iterator[ExecutionRecord]:
        for _, sid in self.execution_index(flow_sid):
            record = self.execution(sid)
            if record is not None:
                yield record

    def steps_of(self, execution_sid: str) -> list[StepRecord]:
        """Every known step of the execution, oldest first."""
        entries = sorted(self._steps.get(execution_sid, {}).values(), key=lambda s: s.index)
        return [_decode(s.raw, StepRecord) for s in entries]

    def step(self, execution_sid: str, step_sid: str) -> StepRecord | None:
        entry = self._steps.get(execution_sid, {}).get(step_sid)
        return None if entry is None else _decode(entry.raw, StepRecord)

    def known_steps(self, execution_sid: str) -> int:
        return len(self._steps.get(execution_sid, {}))

    async def changed(self, timeout: float) -> None:
        """Wait until the next record is applied (or ``timeout`` passes)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def sizes(self) -> dict[str, int]:
        return {"executions": len(self._executions), "steps": len(self._step_owner), "orphans": len(self._orphans),
                "deleted": len(self._deleted), "pending": len(self._pending)}

    # -- the janitor's decisions (pure given the clock) ----------------------------------------

    def due_tombstones(self, delay: float = 0.0) -> list[str]:
        """Keys to tombstone now: expired executions (steps first), late records of deleted ones, orphans.

        ``delay`` postpones everything (the replica stagger). Keys returned are
        not dropped here: the store forgets them when the tombstones are read
        back, the same way on every replica. Call :meth:`retry` with the keys
        if publishing them failed.
        """
        now = self.clock.now()
        keys: list[str] = []
        while self._expiry and self._expiry[0][0] + delay <= now:
            _, sid = heapq.heappop(self._expiry)
            entry = self._executions.get(sid)
            if entry is None or entry.status != "ended":
                continue
            if self._visible(entry, now - delay):  # a later ended snapshot moved its end: wait for that
                heapq.heappush(self._expiry, (entry.date_updated + self.retention, sid))
            else:
                keys.extend(self.keys_of(sid))
        for key, since in list(self._pending.items()):
            if since + delay <= now:
                keys.append(key)
                del self._pending[key]
        for execution_sid, since in list(self._orphans.items()):
            if since + self.orphan_grace + delay <= now and execution_sid not in self._executions:
                keys.extend(self._steps.get(execution_sid, {}))
                del self._orphans[execution_sid]
        for sid, since in list(self._deleted.items()):  # insertion-ordered: oldest first
            if since + self.deleted_memory > now:
                break
            del self._deleted[sid]
        return keys

    def retry(self, keys: list[str]) -> None:
        """Publishing these tombstones failed: try again on the next round."""
        now = self.clock.now()
        for key in keys:
            self._pending.setdefault(key, now)


T = TypeVar("T")


def _discard(indexes: dict[str, SortedList], flow_sid: str, key: ExecutionKey) -> None:
    index = indexes.get(flow_sid)
    if index is not None:
        index.discard(key)
        if not index:
            del indexes[flow_sid]


def _decode(raw: bytes, kind: type[T]) -> T:
    record = decode(raw)
    if not isinstance(record, kind):
        raise TypeError(f"expected {kind.__name__}, found {type(record).__name__}")
    return record


async def follow_history(consumer: AIOKafkaConsumer, store: HistoryStore) -> None:
    """Apply every record of the history topic to ``store``, forever; set ``ready`` once caught up."""
    await follow(consumer, store.apply, store.ready)


Publish = Callable[[str], Awaitable[object]]


async def run_janitor(store: HistoryStore, tombstone: Publish, instance: int, interval: float = 10.0,
                      stagger: float = 60.0) -> None:
    """Every ``interval`` seconds publish the tombstones the store says are due; forever.

    Replica ``instance`` waits ``instance × stagger`` seconds longer than
    replica 0, so normally one replica does the work and the others find it
    done when their turn comes.
    """
    await store.ready.wait()
    while True:
        keys = store.due_tombstones(delay=instance * stagger)
        for position, key in enumerate(keys):
            try:
                await tombstone(key)
            except Exception:
                log.exception("publishing history tombstones failed; retrying next round")
                store.retry(keys[position:])
                break
        if keys:
            log.info("history janitor tombstoned %d keys", len(keys), extra={"fields": store.sizes()})
        await asyncio.sleep(interval)

