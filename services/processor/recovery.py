"""Loading a partition's route rows before the batched loop handles any of its events.

On assignment a partition is paused and loaded: its local rows (``route_store.py``), then every changelog record
after the offset stored with them, up to the changelog's end offset read at the start of recovery. Only then is
it resumed. Records after that end were written by this process's own batches (it owns the partition now), which
write the store themselves.

``ChangelogFold`` is the pure part: it folds records onto a store in chunks, ignoring zombie records
(``route_store.supersedes``) and noting which rows are idle (``route_sweep``) as it goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from .route_store import RouteRows, supersedes
from .route_sweep import SweepCandidates, idle_applied

__all__ = ["ChangelogFold", "recover_partitions"]

log = logging.getLogger(__name__)

#: Records folded before the pending rows are written to the store (bounds memory during a long recovery).
CHUNK = 5000


@dataclass
class ChangelogFold:
    """Folds one partition's changelog records onto its store."""

    partition: int
    rows: RouteRows
    candidates: SweepCandidates
    pending: dict[bytes, bytes | None] = field(default_factory=dict)
    #: the ``applied`` offsets of rows deleted during this recovery: a zombie's late row must not resurrect them
    deleted: dict[bytes, bytes] = field(default_factory=dict)
    last_offset: int = -1
    records: int = 0
    ignored: int = 0

    def apply(self, offset: int, key: bytes | None, value: bytes | None,
              headers: Iterable[tuple[str, bytes]] = ()) -> None:
        self.last_offset = max(self.last_offset, offset)
        if key is None:
            return
        self.records += 1
        stored = self.pending[key] if key in self.pending else self.rows.get(key)
        if stored is None and value is not None:
            stored = self.deleted.get(key)
        if not supersedes(stored, value, _deletes_applied(headers) if value is None else None):
            self.ignored += 1
            return
        if value is None:
            if stored is not None:
                self.deleted[key] = stored
            self.candidates.forget(self.partition, key)
        else:
            self.deleted.pop(key, None)
            applied = idle_applied(value)
            if applied is None:
                self.candidates.forget(self.partition, key)
            else:
                self.candidates.note(self.partition, key, applied)
        self.pending[key] = value

    @property
    def due(self) -> bool:
        return len(self.pending) >= CHUNK

    def flush(self) -> None:
        """Write what is pending, with the offset of the last record read."""
        if self.pending or self.last_offset > self.rows.changelog_offset:
            self.rows.write(self.pending, self.last_offset)
        self.pending = {}


def _deletes_applied(headers: Iterable[tuple[str, bytes]]) -> int | None:
    for name, value in headers or ():
        if name == "applied":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def note_idle_rows(partition: int, rows: RouteRows, candidates: SweepCandidates) -> tuple[int, int]:
    """Note the idle rows already in a local store (candidates live in memory: a restart must find them again);
    (rows, idle rows) found."""
    found = index = 0
    for index, (key, value) in enumerate(rows.items(), start=1):
        applied = idle_applied(value)
        if applied is not None:
            candidates.note(partition, key, applied)
            found += 1
        if index % 10_000 == 0:
            await asyncio.sleep(0)  # other tasks (heartbeats, /metrics) keep running during a long scan
    return index, found


async def recover_partitions(reader: AIOKafkaConsumer, topic: str, stores: dict[int, RouteRows],
                             candidates: SweepCandidates, renew: Callable[[int], RouteRows],
                             still_wanted: Callable[[], bool]) -> dict[int, ChangelogFold]:
    """Bring every store of ``stores`` (partition -> rows) up to the changelog's current end; return the folds.

    A store that claims a changelog offset the changelog does not have (the topic was recreated) is replaced by
    ``renew(partition)`` (an empty one) and ``stores`` updated. ``still_wanted()`` is asked between fetches:
    False abandons the recovery (a rebalance took the partitions away meanwhile); every store then still holds a
    consistent prefix of the changelog.
    """
    tps = {p: TopicPartition(topic, p) for p in stores}
    if not tps:
        return {}
    reader.assign(list(tps.values()))
    ends = await reader.end_offsets(list(tps.values()))
    beginnings = await reader.beginning_offsets(list(tps.values()))
    for p, tp in tps.items():
        if stores[p].changelog_offset >= ends[tp]:
            log.warning("local route rows are ahead of the changelog (was it recreated?); reading it again",
                        extra={"fields": {"partition": p, "local": stores[p].changelog_offset, "end": ends[tp]}})
            stores[p] = renew(p)
    folds = {p: ChangelogFold(p, rows, candidates) for p, rows in stores.items()}
    for p, tp in tps.items():
        start = stores[p].changelog_offset + 1
        reader.seek(tp, max(start, beginnings[tp]))
    open_tps = {tp for p, tp in tps.items() if ends[tp] > max(stores[p].changelog_offset + 1, beginnings[tp])}
    while open_tps:
        if not still_wanted():
            break
        batches = await reader.getmany(*open_tps, timeout_ms=200, max_records=CHUNK)
        for tp, records in batches.items():
            fold = folds[tp.partition]
            for record in records:
                if record.offset < ends[tp]:
                    fold.apply(record.offset, record.key, record.value, record.headers)
            if fold.due:
                fold.flush()
        for tp in list(open_tps):
            if await reader.position(tp) >= ends[tp]:
                open_tps.discard(tp)
        await asyncio.sleep(0)
    for fold in folds.values():
        fold.flush()
    reader.assign([])
    return folds
