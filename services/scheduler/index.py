"""One partition's pending timers, kept compact: a dict of packed records plus a heap of the same objects.

Pure data structure; the scheduler feeds it what it reads from the ``timers``
topic and asks what is due.

Memory is the design constraint (1,000,000 pending timers must fit in well under
512 MB for the whole process), so a pending timer costs two small Python objects
and two pointers:

* the dict key is an int, the timer id's hash cut to 60 bits (a 32-byte int
  object instead of a 50-70-byte ``bytes``). Collisions are handled, not
  ignored: every record carries its full timer id, a lookup compares it, and
  the rare second timer whose hash is taken lives in a small ``_spill`` dict
  keyed by the full id;
* one ``bytes`` record holding only what ``TimerFired`` needs: the due time as
  8 big-endian IEEE-754 bytes (so records *sort by due time* as plain bytes),
  then the timer id and execution sid "squeezed" (a Twilio-style sid — two
  capitals and 32 lowercase hex digits — becomes 1 + 2 + 16 raw bytes), the
  route with its flow sid interned (2 bytes; a partition sees few flows) and
  the token. A typical record is ~70 bytes, a 112-byte allocation.

The heap holds the very same record objects as the dict (8 bytes a slot, no
``(due, key)`` tuple and no float object per timer), ordered by plain ``bytes``
comparison, which is memcmp in C. Cancelling or replacing a timer only removes
it from the dict; its stale heap entry is recognised by identity (the record
found for its timer id ``is`` the entry) and skipped when it reaches the top,
and the heap is rebuilt once stale entries outnumber live ones, so memory stays
bounded under heavy cancel churn (every execution's 30-day expiry timer is
cancelled when the execution ends). Measured with 1,000,000 pending timers
(``bench/scheduler_bench.py``): 194 bytes per timer for the index alone
(tracemalloc), 214 bytes per timer of whole-process RSS, 246 MiB RSS in all.
"""

from __future__ import annotations

import heapq
import struct
from binascii import hexlify, unhexlify
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Timer", "TimerIndex", "squeeze", "unsqueeze"]

# due (8 bytes, big-endian double: sorts like the number for due >= 0), then the lengths of the squeezed
# timer id and execution sid, the route's interned flow sid (0 = none) and the length of the rest of the
# route; then those fields; the token is the rest of the record.
_HEAD = struct.Struct(">dHHHH")
_HASH_MASK = (1 << 60) - 1  # ints below 2**60 are 32-byte objects
_DUE = struct.Struct(">d")
_SID_LEN = 34
_PLAIN = b"\x00"
_SID = b"\x01"
_MAX_FIELD = 0xFFFF  # field lengths and flow ids are 2-byte unsigned


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


def _is_sid(text: bytes) -> bool:
    return len(text) >= _SID_LEN and squeeze(text[:_SID_LEN])[:1] == _SID


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

    __slots__ = ("_flow_ids", "_flows", "_heap", "_records", "_sorted", "_spill", "_stale")

    def __init__(self) -> None:
        self._records: dict[int, bytes] = {}  # hash of the squeezed timer id -> record
        self._spill: dict[bytes, bytes] = {}  # squeezed timer id -> record, when its hash was taken
        self._heap: list[bytes] = []
        self._stale = 0  # heap entries no longer live
        self._sorted = True
        self._flows: list[bytes] = []  # interned route prefixes (flow sids); id = position + 1
        self._flow_ids: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._records) + len(self._spill)

    def __contains__(self, timer_id: object) -> bool:
        return isinstance(timer_id, bytes) and self._find(squeeze(timer_id)) is not None

    def __iter__(self) -> Iterator[Timer]:
        for record in (*self._records.values(), *self._spill.values()):
            yield self._unpack(record)

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
        record = self._find(squeeze(timer_id))
        return None if record is None else self._unpack(record)

    def put(self, timer_id: bytes, due: float, execution_sid: str, route: str, token: str) -> None:
        """Add or replace a timer. Raises ``ValueError`` for a field longer than 65,535 bytes.

        The hot path of loading a partition (a million calls): kept flat on purpose.
        """
        key = squeeze(timer_id)
        sid = squeeze(execution_sid.encode())
        rte = route.encode()
        flow = self._flow_ids.get(rte[:_SID_LEN], 0)
        if not flow and _is_sid(rte):
            flow = self._intern(rte[:_SID_LEN])
        if flow:
            rte = rte[_SID_LEN:]
        try:
            head = _HEAD.pack(due if due > 0.0 else 0.0, len(key), len(sid), flow, len(rte))
        except struct.error as exc:
            raise ValueError("timer field longer than 65535 bytes") from exc
        record = b"".join((head, key, sid, rte, token.encode()))
        slot = hash(key) & _HASH_MASK
        records = self._records
        current = records.get(slot)
        if current is None:
            records[slot] = record
            if self._spill and key in self._spill:  # an older value spilled while this slot was taken
                del self._spill[key]
                self._stale += 1
        elif _key_of(current) == key:
            records[slot] = record
            self._stale += 1
        else:  # another timer id with the same 60-bit hash
            if key in self._spill:
                self._stale += 1
            self._spill[key] = record
        if self._sorted:
            heapq.heappush(self._heap, record)
        else:
            self._heap.append(record)
        if self._stale > 1024:
            self._maybe_rebuild()

    def cancel(self, timer_id: bytes) -> bool:
        """Forget a timer; true if it was pending."""
        key = squeeze(timer_id)
        slot = hash(key) & _HASH_MASK
        current = self._records.get(slot)
        if current is not None and _key_of(current) == key:
            del self._records[slot]
        elif self._spill.pop(key, None) is None:
            return False
        self._stale += 1
        self._maybe_rebuild()
        return True

    def next_due(self) -> float | None:
        if not self._sorted:
            self._rebuild()
        heap = self._heap
        while heap:
            top = heap[0]
            if self._find(_key_of(top)) is top:
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
            slot = hash(key) & _HASH_MASK
            if records.get(slot) is top:
                del records[slot]
            elif self._spill.get(key) is top:
                del self._spill[key]
            else:
                self._stale -= 1
                continue
            out.append(self._unpack(top))
        return out

    # -- records ---------------------------------------------------------------------------------

    def _find(self, key: bytes) -> bytes | None:
        record = self._records.get(hash(key) & _HASH_MASK)
        if record is not None and _key_of(record) == key:
            return record
        return self._spill.get(key)

    def _intern(self, flow_sid: bytes) -> int:
        if len(self._flows) >= _MAX_FIELD:
            return 0  # absurdly many flows in one partition: store routes whole
        self._flows.append(flow_sid)
        self._flow_ids[flow_sid] = len(self._flows)
        return len(self._flows)

    def _unpack(self, record: bytes) -> Timer:
        due, key_len, sid_len, flow, route_len = _HEAD.unpack_from(record)
        at = _HEAD.size
        key = record[at:at + key_len]
        at += key_len
        sid = record[at:at + sid_len]
        at += sid_len
        route = record[at:at + route_len]
        if flow:
            route = self._flows[flow - 1] + route
        token = record[at + route_len:]
        return Timer(unsqueeze(key).decode(), unsqueeze(sid).decode(), route.decode(), token.decode(), due)

    def _maybe_rebuild(self) -> None:
        if self._stale > len(self) + 1024:
            self._rebuild(order=self._sorted)

    def _rebuild(self, order: bool = True) -> None:
        self._heap = [*self._records.values(), *self._spill.values()]
        if order:
            heapq.heapify(self._heap)
        self._stale = 0
        self._sorted = order
