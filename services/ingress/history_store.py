"""What the Executions and Steps API reads from: the ``HistoryStore`` interface and the rules every backend keeps.

The processor publishes, per execution and sprint, one ``HistoryBatch`` (key =
execution sid) with the steps that sprint took and the execution's snapshot;
the ingress itself publishes tombstones for deletes: key = execution sid or
step sid (one execution) or flow sid (every execution of a deleted flow). A
backend (``history_sqlite.py``) applies those records and answers every read;
nothing is held in process memory beyond the backend's bounded page cache.

Correctness rules (the topic is at-least-once and spread over partitions):

* **Snapshots only move forward.** A snapshot replaces the held one only if it
  is not older by ``(ended, step_count, date_updated)`` (:func:`rank`); an
  ended execution never becomes active again; the first ``date_created`` stays
  (it is the list's sort key).
* **Steps may arrive without their execution** (single ``StepRecord`` messages
  or steps-only batches): they are kept as *orphans* and dropped if no snapshot
  comes within ``orphan_grace``.
* **Deleted stays deleted.** A tombstone drops the execution (and its steps) or
  the whole flow's executions; for ``deleted_memory`` seconds afterwards any
  record of that execution or flow that still shows up (a late snapshot after
  an end request, a replay) is dropped, and an execution-level one is queued for
  another tombstone so replicas reading the topic later drop it too.
* **Retention.** An ended execution is readable for ``retention`` seconds after
  it ended. After that reads treat it as gone at once and the janitor deletes it
  and its steps locally: every replica decides the same from the record's own
  time, so retention needs no messages; the topic itself is time-retained.
* **Restarts read only the tail.** The Kafka offsets applied are stored with
  the records, in the same transaction; a restarted ingress resumes from them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Protocol, TypeVar

from shared.messages import ExecutionRecord, StepRecord, decode

__all__ = ["HistoryStore", "ListQuery", "Page", "TopicRecord", "decode_as", "execution_record", "rank"]

T = TypeVar("T")

#: One record of the history topic: (partition, offset, key, value); ``value=None`` is a tombstone.
TopicRecord = tuple[int, int, bytes | None, bytes | None]

#: A list's sort key: ``(-date_created, sid)`` — newest first, the sid breaks ties.
Key = tuple[float, str]


def rank(status: str, step_count: int, date_updated: float) -> tuple[bool, int, float]:
    """How far along a snapshot is; a snapshot with a lower rank than the held one is an old replay."""
    return (status == "ended", step_count, date_updated)


def decode_as(raw: bytes, kind: type[T]) -> T:
    """A stored record, which must be of ``kind``."""
    record = decode(raw)
    if not isinstance(record, kind):
        raise TypeError(f"expected {kind.__name__}, found {type(record).__name__}")
    return record


def execution_record(k: float, raw: bytes) -> ExecutionRecord:
    """A stored snapshot with the list key's ``date_created`` (``k = -date_created``): the first one stays."""
    record = decode_as(raw, ExecutionRecord)
    if record.date_created != -k:  # a replayed snapshot may disagree; the first date_created is the one shown
        record = dataclasses.replace(record, date_created=-k)
    return record


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of a flow's executions, newest first: keys strictly after ``after`` or strictly before ``before``.

    ``low``/``high`` bound the keys inclusively (the date filters); ``status`` is ``None``, ``active`` or
    ``ended``. ``limit`` rows at most are returned (the caller asks one more than a page to learn if there is
    a next one).
    """

    flow_sid: str
    status: str | None
    limit: int
    after: Key | None = None
    before: Key | None = None
    low: Key | None = None
    high: Key | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Keys in list order (also when read backwards) and their records."""

    keys: list[Key]
    records: dict[str, ExecutionRecord]


class HistoryStore(Protocol):
    """The read model of executions and steps; ``ready`` is set once it holds what the topic held at start."""

    ready: asyncio.Event

    async def open(self) -> dict[int, int]:
        """Open (creating or upgrading) the store; the next offset to read of each partition it has applied."""
        ...

    async def close(self) -> None: ...

    async def offsets(self) -> dict[int, int]:
        """The next offset to read of each partition, as applied so far."""
        ...

    async def reset(self) -> None:
        """Forget everything (the topic it was built from is gone: a new cluster or a recreated topic)."""
        ...

    async def apply(self, records: list[TopicRecord]) -> None:
        """Apply records read from the topic and remember their offsets, atomically."""
        ...

    async def apply_local(self, key: bytes, value: bytes | None) -> None:
        """Apply a record this replica just wrote (read-your-writes); its offset is recorded when read back."""
        ...

    async def execution(self, sid: str) -> ExecutionRecord | None:
        """A visible execution (not deleted, not past retention)."""
        ...

    async def known(self, sid: str) -> bool:
        """Whether this replica has seen the execution at all (held, expired or recently deleted)."""
        ...

    async def list_executions(self, query: ListQuery) -> Page: ...

    async def execution_sids(self, flow_sid: str, status: str | None = None) -> list[str]: ...

    async def steps_of(self, execution_sid: str) -> list[StepRecord]:
        """Every known step of the execution, oldest first."""
        ...

    async def step(self, execution_sid: str, step_sid: str) -> StepRecord | None: ...

    async def known_steps(self, execution_sid: str) -> int: ...

    async def keys_of(self, execution_sid: str) -> list[str]:
        """The history keys of an execution: its steps, then itself (the order tombstones go out)."""
        ...

    async def changed(self, timeout: float) -> None:
        """Wait until the next record is applied (or ``timeout`` passes)."""
        ...

    async def housekeep(self, delay: float = 0.0) -> list[str]:
        """Delete what retention and the orphan grace say is gone; return keys that need another tombstone

        (due ``delay`` seconds late: the replica stagger)."""
        ...

    async def retry(self, keys: list[str]) -> None:
        """Publishing these tombstones failed: return them from the next :meth:`housekeep` again."""
        ...

    async def sizes(self) -> dict[str, int]: ...
