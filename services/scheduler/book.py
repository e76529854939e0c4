"""The scheduler's bookkeeping, without I/O: which partitions it owns, which are loaded, what is in flight.

``TimerBook`` is the pure core of the service. The Kafka shell tells it what the
consumer group assigned and revoked and every record it read from the compacted
``timers`` topic; it answers what to seek to, which timers are due, whether a
claimed timer may still be sent, and whether a fire needs a tombstone.

Rules it enforces (each pinned by a unit test):

* A partition fires nothing until it is *loaded*: its consumer position has
  reached the end offset taken at assignment. Only then have all its
  tombstones been seen, so a timer cancelled while the scheduler was down (or
  while it was loading) never fires. The check is ``position >= end offset``:
  after compaction offsets have gaps, so "last record offset + 1" can stay
  below the end offset forever.
* Records are applied in offset order per partition; a record at an offset
  already applied (a re-fetch after a seek) is skipped, so an old value can
  never resurrect a timer a later tombstone removed.
* A timer popped for firing is *claimed*. A tombstone or a newer value for it
  consumed before the shell hands the fire to the producer withdraws the claim
  (:meth:`begin_send` then says no), so a cancel the scheduler has read is
  always honoured. A cancel still travelling through Kafka when the timer
  comes due cannot be seen; the fire is published and the processor drops it
  by its wait token (it emitted the cancel because it left that wait).
* After a fire is acknowledged it is tombstoned, unless a newer value for the
  same timer id arrived meanwhile (the tombstone would delete the new timer).
  Residual race: a newer value still in flight when the tombstone is written
  is lost; the processor never reuses a timer id for a different wait, so this
  cannot happen with its timers.
* Revocation stops firing a partition at once (unsent claims are dropped; the
  new owner fires them). The partition's index is kept until the assignment
  that completes the rebalance: if the partition comes back, loading resumes
  from the offset after the last record applied instead of re-reading the
  whole partition — the index is a pure function of the log prefix applied,
  and Kafka only appends. That is safe while no tombstone after that offset
  can have been compacted away, i.e. for less than the topic's
  ``delete.retention.ms`` (10 minutes, ``shared/topics.py``);
  ``reuse_seconds`` (2 minutes) bounds it well below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from .index import Timer, TimerIndex

__all__ = ["Applied", "Claim", "PartitionState", "RecordLike", "Tally", "TimerBook"]


class Applied:
    """What applying one record did (for metrics)."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"  # a pending (or claimed, unsent) timer was removed by a tombstone
    NOOP = "noop"  # a tombstone for a timer not pending (already fired, or our own fire's tombstone)
    SKIPPED = "skipped"  # not ours, already applied, or no key
    INVALID = "invalid"  # a value that is not a ScheduleTimer


class RecordLike(Protocol):
    """What the book reads of a Kafka record (aiokafka's ``ConsumerRecord`` fits)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(slots=True)
class Tally:
    """What a batch of records did: timers scheduled, pending timers cancelled, offsets of invalid values."""

    scheduled: int = 0
    cancelled: int = 0
    invalid: list[int] = field(default_factory=list)


@dataclass(slots=True)
class PartitionState:
    """One partition of the ``timers`` topic as this scheduler knows it."""

    index: TimerIndex = field(default_factory=TimerIndex)
    next_offset: int = 0  # the offset after the last record applied
    end_offset: int | None = None  # where loading ends; None until the shell has asked Kafka
    live: bool = False  # loaded: its timers may fire
    owned: bool = True
    revoked_at: float = 0.0
    loaded_records: int = 0  # records applied while loading (recovery metric)


@dataclass(slots=True, eq=False)
class Claim:
    """A due timer taken out of its index to be fired."""

    partition: int
    key: bytes
    timer: Timer
    sent: bool = False


class TimerBook:
    """Everything the scheduler decides, driven by the Kafka shell. See the module docstring."""

    def __init__(self, reuse_seconds: float = 120.0) -> None:
        self.partitions: dict[int, PartitionState] = {}
        self.inflight: dict[bytes, Claim] = {}
        self.reuse_seconds = reuse_seconds

    # -- the consumer group ----------------------------------------------------------------------

    def revoke(self, partitions: Iterable[int], now: float) -> None:
        """Stop firing these partitions now; keep their indexes until the next assignment."""
        gone = set(partitions)
        for p in gone:
            state = self.partitions.get(p)
            if state is not None and state.owned:
                state.owned, state.live, state.revoked_at = False, False, now
        for key, claim in list(self.inflight.items()):
            if claim.partition in gone and not claim.sent:
                del self.inflight[key]
                self._restore(claim)  # if the partition comes back, its index must still hold this timer

    def assign(self, partitions: Iterable[int], now: float, beginnings: Mapping[int, int]) -> dict[int, int]:
        """Take these partitions; return the offset to seek each to. Forgets every partition not assigned."""
        assigned = set(partitions)
        seek: dict[int, int] = {}
        for p in assigned:
            state = self.partitions.get(p)
            begin = beginnings.get(p, 0)
            reusable = state is not None and begin <= state.next_offset and (
                state.owned or now - state.revoked_at <= self.reuse_seconds)
            if state is None or not reusable:
                state = PartitionState(next_offset=begin)
                self.partitions[p] = state
            state.owned, state.live, state.end_offset, state.loaded_records = True, False, None, 0
            state.index.bulk = True
            seek[p] = state.next_offset
        for p in [p for p in self.partitions if p not in assigned]:
            del self.partitions[p]
        for key, claim in list(self.inflight.items()):
            if claim.partition not in assigned and not claim.sent:
                del self.inflight[key]
        return seek

    def set_end(self, partition: int, end_offset: int) -> None:
        """Loading of ``partition`` ends at ``end_offset`` (its end offset right after assignment)."""
        state = self.partitions.get(partition)
        if state is not None and state.owned and state.end_offset is None:
            state.end_offset = end_offset
            self.caught_up(partition, state.next_offset)

    def caught_up(self, partition: int, position: int) -> bool:
        """Tell the book the consumer's position; true if this made the partition live."""
        state = self.partitions.get(partition)
        if state is None or state.live or not state.owned or state.end_offset is None:
            return False
        if max(position, state.next_offset) >= state.end_offset:
            state.live = True
            state.index.bulk = False
            return True
        return False

    def loading(self) -> list[int]:
        return [p for p, s in self.partitions.items() if s.owned and not s.live]

    def unsized(self) -> list[int]:
        """Owned partitions whose end offset the shell still has to fetch."""
        return [p for p, s in self.partitions.items() if s.owned and s.end_offset is None]

    def owned(self) -> list[int]:
        return [p for p, s in self.partitions.items() if s.owned]

    def all_live(self) -> bool:
        return all(s.live for s in self.partitions.values() if s.owned)

    def pending(self) -> int:
        return sum(len(s.index) for s in self.partitions.values() if s.owned)

    # -- records ---------------------------------------------------------------------------------

    def apply(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> str:
        """Apply one record of the ``timers`` topic (``value`` None = tombstone)."""
        state = self.partitions.get(partition)
        if state is None or not state.owned:
            return Applied.SKIPPED
        return self._apply(state, partition, offset, key, value)

    def apply_records(self, partition: int, records: Iterable[RecordLike]) -> Tally:
        """Apply a fetched batch of one partition, in offset order; the loading hot path."""
        tally = Tally()
        state = self.partitions.get(partition)
        if state is None or not state.owned:
            return tally
        apply = self._apply
        for record in records:
            applied = apply(state, partition, record.offset, record.key, record.value)
            if applied is Applied.SCHEDULED:
                tally.scheduled += 1
            elif applied is Applied.CANCELLED:
                tally.cancelled += 1
            elif applied is Applied.INVALID:
                tally.invalid.append(record.offset)
        return tally

    def _apply(self, state: PartitionState, partition: int, offset: int, key: bytes | None,
               value: bytes | None) -> str:
        if offset < state.next_offset:
            return Applied.SKIPPED
        state.next_offset = offset + 1
        if not state.live:
            state.loaded_records += 1
        if key is None:
            return Applied.SKIPPED
        if not key.isascii():
            try:
                key.decode()
            except UnicodeDecodeError:  # TimerFired carries the id as text: such a key can never fire
                return Applied.INVALID
        claim = self.inflight.get(key) if self.inflight else None
        if claim is not None and claim.partition == partition:
            del self.inflight[key]  # a cancel or a newer value withdraws the claimed fire
        if value is None:
            removed = state.index.cancel(key) or (claim is not None and not claim.sent)
            return Applied.CANCELLED if removed else Applied.NOOP
        try:
            data = orjson.loads(value)
            if data["kind"] != "timer":
                raise ValueError("not a timer")
            due = float(data["due_at"])
            if not math.isfinite(due):
                raise ValueError("due_at is not finite")
            # put() raises ValueError (bad types or sizes): str.encode is not a method of ints, lists…
            state.index.put(key, due, data["execution_sid"], data["route"], data["token"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            # The latest value of this key is not a timer: like compaction, forget the older one.
            state.index.cancel(key)
            return Applied.INVALID
        return Applied.SCHEDULED

    # -- firing ----------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """The earliest due time over the loaded partitions."""
        best: float | None = None
        for state in self.partitions.values():
            if state.live:
                due = state.index.next_due()
                if due is not None and (best is None or due < best):
                    best = due
        return best

    def pop_due(self, now: float, limit: int = 1000) -> list[Claim]:
        """Claim up to ``limit`` timers due at ``now`` from loaded partitions, earliest partition first."""
        ready = []
        for p, state in self.partitions.items():
            if state.live:
                due = state.index.next_due()
                if due is not None and due <= now:
                    ready.append((due, p))
        claims: list[Claim] = []
        for _, p in sorted(ready):
            if len(claims) >= limit:
                break
            for timer in self.partitions[p].index.pop_due(now, limit - len(claims)):
                claim = Claim(p, timer.timer_id.encode(), timer)
                self.inflight[claim.key] = claim
                claims.append(claim)
        return claims

    def begin_send(self, claim: Claim) -> bool:
        """True if ``claim`` may be sent now (not cancelled, replaced or revoked since it was popped)."""
        if self.inflight.get(claim.key) is not claim:
            return False
        claim.sent = True
        return True

    def finish(self, claim: Claim, delivered: bool) -> bool:
        """The fire was acknowledged (or failed); true if the shell must now write the tombstone.

        A failed fire goes back into its index (unless a cancel or a newer value
        came meanwhile) and is retried — or, if the partition was revoked, fired
        by whoever loads it next (no tombstone was written).
        """
        current = self.inflight.get(claim.key)
        if current is claim:
            del self.inflight[claim.key]
        if delivered:
            return current is claim
        if current is claim:
            self._restore(claim)
        return False

    def _restore(self, claim: Claim) -> None:
        """Put a claimed timer that was not fired back into its partition's index (kept or live)."""
        state = self.partitions.get(claim.partition)
        if state is not None and claim.key not in state.index:
            t = claim.timer
            state.index.put(claim.key, t.due_at, t.execution_sid, t.route, t.token)

