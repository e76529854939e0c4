"""One partition's pending timers, kept compact: a dict of packed records plus a heap of the same objects.

Pure data structure; the scheduler feeds it what it reads from the ``timers``
topic and asks what is due.

Memory is the design constraint (1,000,000 pending timers must fit in well under
512 MB for the whole process), so a pending timer is stored as exactly two
Python objects:

* the dict key: the timer id, "squeezed" (a Twilio-style sid — two capitals and
  32 lowercase hex digits — is stored as 1 + 2 + 16 raw bytes instead of 34);
* one ``bytes`` record holding only what ``TimerFired`` needs: the due time as
  8 big-endian IEEE-754 bytes (so records *sort by due time* as plain bytes),
  then the squeezed timer id, execution sid and route and the token.

The heap holds the very same record objects as the dict (8 bytes a slot, no
``(due, key)`` tuple and no float object per timer), ordered by plain ``bytes``
comparison, which is memcmp in C. Cancelling or replacing a timer only removes
it from the dict; its stale heap entry is recognised by identity
(``records[key] is entry``) and skipped when it reaches the top, and the heap
is rebuilt once stale entries outnumber live ones, so memory stays bounded
under heavy cancel churn (every execution's 30-day expiry timer is cancelled
when the execution ends). Measured: see ``bench/scheduler_bench.py`` and the
README's performance section (about 200 bytes per pending timer).
"""

from __future__ import annotations

import heapq
import struct
from binascii import hexlify, unhexlify
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Timer", "TimerIndex", "squeeze", "unsqueeze"]

# due (8 bytes, big-endian double: sorts like the number for due >= 0), then the lengths of the squeezed
# timer id, execution sid and route; the token is the rest of the record.
_HEAD = struct.Struct(">dHHH")
_DUE = struct.Struct(">d")
_SID_LEN = 34
_PLAIN = b"\x00"
_SID = b"\x01"
_MAX_FIELD = 0xFFFF


def squeeze(text: bytes) -> bytes:
    """A shorter, reversible form of ``text``: a leading sid (``XX`` + 32 lowercase hex) becomes 18 bytes."""
    if len(text) >= _SID_LEN and 65 <= text[0] <= 90 and 65 <= text[1] <= 90:
        digits = text[2:_SID_LEN]
        try:
            raw = unhexlify(digits)
        except ValueError:
            return _PLAIN + text
        if hexlify(raw) == digits:  # only lowercase hex round-trips exactly
            return _SID + text[:2] + raw + text[_SID_LEN:]
    return _PLAIN + text


def unsqueeze(data: bytes) -> bytes:
    """Inverse of :func:`squeeze`."""
    if data[:1] == _SID:
        return data[1:3] + hexlify(data[3:19]) + data[19:]
    return data[1:]


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending timer as the scheduler fires it: everything ``TimerFired`` carries except ``fired_at``."""

    timer_id: str
    execution_sid: str
    route: str
    token: str
    due_at: float


def _pack(key: bytes, due: float, execution_sid: str, route: str, token: str) -> bytes:
    sid = squeeze(execution_sid.encode())
    rte = squeeze(route.encode())
    tok = token.encode()
    if len(key) > _MAX_FIELD or len(sid) > _MAX_FIELD or len(rte) > _MAX_FIELD:
        raise ValueError("timer field longer than 65535 bytes")
    return _HEAD.pack(max(due, 0.0), len(key), len(sid), len(rte)) + key + sid + rte + tok


def _unpack(record: bytes) -> Timer:
    due, key_len, sid_len, route_len = _HEAD.unpack_from(record)
    at = _HEAD.size
    key = record[at:at + key_len]
    at += key_len
    sid = record[at:at + sid_len]
    at += sid_len
    route = record[at:at + route_len]
    token = record[at + route_len:]
    return Timer(unsqueeze(key).decode(), unsqueeze(sid).decode(), unsqueeze(route).decode(), token.decode(), due)


def _key_of(record: bytes) -> bytes:
    key_len = int.from_bytes(record[8:10], "big")
    return record[_HEAD.size:_HEAD.size + key_len]


def _due_of(record: bytes) -> float:
    return float(_DUE.unpack_from(record)[0])


class TimerIndex:
    """Pending timers of one partition, by timer id (the Kafka record key), earliest due first.

    Contract: ``put`` replaces any timer with the same id; ``cancel`` forgets it;
    ``pop_due`` removes and returns timers due at or before ``now``, earliest
    first. While ``bulk`` is true (the partition is loading) ``put`` only appends
    to the heap and the heap is ordered once, when ``bulk`` is switched off.
    """

    __slots__ = ("_heap", "_records", "_sorted", "_stale")

    def __init__(self) -> None:
        self._records: dict[bytes, bytes] = {}
        self._heap: list[bytes] = []
        self._stale = 0  # heap entries no longer in ``_records``
        self._sorted = True

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, timer_id: object) -> bool:
        return isinstance(timer_id, bytes) and squeeze(timer_id) in self._records

    def __iter__(self) -> Iterator[Timer]:
        return (_unpack(record) for record in self._records.values())

    @property
    def bulk(self) -> bool:
        return not self._sorted

    @bulk.setter
    def bulk(self, on: bool) -> None:
        if on:
            self._sorted = False
        elif not self._sorted:
            self._rebuild()

    def get(self, timer_id: bytes) -> Timer | None:
        record = self._records.get(squeeze(timer_id))
        return None if record is None else _unpack(record)

    def put(self, timer_id: bytes, due: float, execution_sid: str, route: str, token: str) -> None:
        key = squeeze(timer_id)
        record = _pack(key, due, execution_sid, route, token)
        if self._records.get(key) is not None:
            self._stale += 1
        self._records[key] = record
        if self._sorted:
            heapq.heappush(self._heap, record)
        else:
            self._heap.append(record)
        self._maybe_rebuild()

    def cancel(self, timer_id: bytes) -> bool:
        """Forget a timer; true if it was pending."""
        if self._records.pop(squeeze(timer_id), None) is None:
            return False
        self._stale += 1
        self._maybe_rebuild()
        return True

    def next_due(self) -> float | None:
        if not self._sorted:
            self._rebuild()
        heap, records = self._heap, self._records
        while heap:
            top = heap[0]
            if records.get(_key_of(top)) is top:
                return _due_of(top)
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def pop_due(self, now: float, limit: int = 1000) -> list[Timer]:
        """Remove and return up to ``limit`` timers due at or before ``now``, earliest first."""
        if not self._sorted:
            self._rebuild()
        out: list[Timer] = []
        heap, records = self._heap, self._records
        bound = _DUE.pack(max(now, 0.0))
        while heap and len(out) < limit:
            top = heap[0]
            if top[:8] > bound:
                break
            heapq.heappop(heap)
            key = _key_of(top)
            if records.get(key) is not top:
                self._stale -= 1
                continue
            del records[key]
            out.append(_unpack(top))
        return out

    def _maybe_rebuild(self) -> None:
        if self._stale > len(self._records) + 1024:
            self._rebuild(order=self._sorted)

    def _rebuild(self, order: bool = True) -> None:
        self._heap = list(self._records.values())
        if order:
            heapq.heapify(self._heap)
        self._stale = 0
        self._sorted = order
