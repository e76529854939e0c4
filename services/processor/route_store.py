"""The batched loop's route rows, one store per partition of the events topic: always a prefix of the changelog.

The changelog (``<app id>-routes-changelog``, compacted, key = route key, value = the encoded row, None =
deleted) is the rows' truth, with the faust agent's exact record format, so either loop reads what the other
wrote. Locally a partition's rows live in memory (``memory``: recovery re-reads the whole changelog partition)
or in RocksDB on local disk (``rocksdb``: recovery reads only the changelog after the offset stored beside the
rows).

A store is written only with rows Kafka has already acknowledged, together with the highest changelog offset
they were written at, in one atomic write. So the local copy is never *ahead* of the changelog (the faust store
was: it wrote locally first), and recovery after any crash is "local rows, then the changelog after their
offset" with nothing to reconcile.

Not compatible with faust's local files (their folder, ``<datadir>/<app id>-data``, is not read): switching
loops re-reads the changelog once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import orjson

__all__ = ["MemoryRows", "RocksRows", "RouteRows", "open_rows", "supersedes"]

#: Where a RocksDB store keeps the changelog offset of its newest row (not a route key: route keys contain ':').
_OFFSET_KEY = b"__switchboard\0changelog_offset__"


class RouteRows(Protocol):
    """One partition's rows."""

    @property
    def changelog_offset(self) -> int:
        """The changelog offset of the newest record the store holds; -1: none (read the changelog from its start)."""

    def get(self, key: bytes) -> bytes | None: ...

    def write(self, rows: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        """Store ``rows`` (None deletes) acknowledged up to ``changelog_offset``, atomically."""

    def items(self) -> Iterator[tuple[bytes, bytes]]: ...

    def close(self) -> None: ...


class MemoryRows:
    def __init__(self) -> None:
        self._rows: dict[bytes, bytes] = {}
        self._offset = -1

    @property
    def changelog_offset(self) -> int:
        return self._offset

    def get(self, key: bytes) -> bytes | None:
        return self._rows.get(key)

    def write(self, rows: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        for key, value in rows.items():
            if value is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = value
        self._offset = max(self._offset, changelog_offset)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._rows.items()))

    def close(self) -> None:
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


class RocksRows:
    """A RocksDB database per partition (rocksdict), with small memtables and cache: rows are read once per event
    and the OS page cache keeps the files (the same sizes as the faust store's, ``app.store_options``)."""

    def __init__(self, path: Path) -> None:
        import rocksdict

        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(256)
        options.set_write_buffer_size(4 * 1024 * 1024)
        options.set_max_write_buffer_number(2)
        options.set_target_file_size_base(16 * 1024 * 1024)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(3, True)
        table.set_block_cache(rocksdict.Cache(8 * 1024 * 1024))
        options.set_block_based_table_factory(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = rocksdict.Rdict(str(path), options=options)
        self._batch_type = rocksdict.WriteBatch
        stored = self._db.get(_OFFSET_KEY)
        self._offset = int(stored) if stored is not None else -1

    @property
    def changelog_offset(self) -> int:
        return self._offset

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return value if isinstance(value, bytes) else None

    def write(self, rows: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        batch = self._batch_type(raw_mode=True)
        for key, value in rows.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        offset = max(self._offset, changelog_offset)
        batch.put(_OFFSET_KEY, str(offset).encode())
        self._db.write(batch)
        self._offset = offset

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items():
            if isinstance(key, bytes) and isinstance(value, bytes) and key != _OFFSET_KEY:
                yield key, value

    def close(self) -> None:
        self._db.close()


def open_rows(store: str, datadir: Path, partition: int) -> RouteRows:
    """The rows of ``partition`` in ``store`` ("memory" or "rocksdb" under ``datadir``)."""
    if store == "memory":
        return MemoryRows()
    return RocksRows(datadir / f"routes-{partition}.db")


def discard_local(datadir: Path, partition: int) -> None:
    """Delete a partition's local files (they are ahead of a changelog that was recreated: start again)."""
    shutil.rmtree(datadir / f"routes-{partition}.db", ignore_errors=True)


def supersedes(stored: bytes | None, record: bytes | None, deletes_applied: int | None = None) -> bool:
    """Recovery: does changelog ``record`` replace the ``stored`` row of its key?

    A row's ``applied`` offset only grows along the changelog (each owner starts from the row it recovered and
    stamps the offsets of later events; a route deleted and started again starts at a later event). A record
    with a *lower* ``applied`` than the row already read can only come from a zombie: a processor that lost its
    partitions while stopped and, waking, still sent the rows of a batch it can no longer commit. Such a record
    would move the route back to an earlier wait, so it is ignored. A tombstone carries the ``applied`` offset of
    the row it deleted (``deletes_applied``, header ``applied``; None: written by faust, or by nothing that knew):
    it deletes a stored row only if that row is not newer.
    """
    if stored is None:
        return True
    if record is None:
        return deletes_applied is None or _applied(stored) <= deletes_applied
    return _applied(record) >= _applied(stored)


def _applied(value: bytes) -> int:
    """The row's ``applied`` offset. ``encode_route_record`` writes it after ``active``, ``calls`` and ``recent``
    (sids, numbers: a quote inside them is escaped, so the first ``"applied":`` is the row's own), so it is read
    without decoding the whole row (recovery reads every record of a partition)."""
    at = value.find(b'"applied":')
    if at >= 0:
        end = at + 10
        stop = end
        while stop < len(value) and value[stop] in b"-0123456789":
            stop += 1
        if stop > end:
            return int(value[end:stop])
    try:
        applied = orjson.loads(value).get("applied", -1)
    except (orjson.JSONDecodeError, AttributeError):
        return -1
    return applied if isinstance(applied, int) else -1
