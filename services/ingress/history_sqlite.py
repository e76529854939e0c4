"""The embedded history backend: SQLite in WAL mode on local disk, one file per ingress replica.

Writes (records read from the topic, and this replica's own writes) run on one
writer thread with its own connection, in a transaction per batch that also
stores the batch's offsets; reads run on the event loop's own connection (WAL:
readers never wait for the writer, and a read is an index lookup). sqlite3
releases the GIL while SQLite works, so a large batch being written does not
stall webhook answers.

Memory is SQLite's page cache (``cache_kib`` per connection) plus the current
batch, whatever the number of executions held. Disk space of deleted rows is
handed back by incremental vacuum after each housekeeping round.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from shared.clock import Clock, SystemClock
from shared.messages import DecodeError, ExecutionRecord, HistoryBatch, StepRecord, decode

from .history_store import ListQuery, Page, TopicRecord, decode_as, execution_record

__all__ = ["SqliteHistoryStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    sid TEXT PRIMARY KEY,
    flow_sid TEXT NOT NULL,
    status TEXT NOT NULL,
    k REAL NOT NULL,            -- -date_created: the list order is (k, sid) ascending, i.e. newest first
    date_updated REAL NOT NULL,
    step_count INTEGER NOT NULL,
    raw BLOB NOT NULL           -- the ExecutionRecord as our codec's JSON
);  -- a rowid table: rows of a few KB are what rowid tables are for (WITHOUT ROWID suits small rows)
CREATE INDEX IF NOT EXISTS executions_by_flow ON executions (flow_sid, k, sid);
CREATE INDEX IF NOT EXISTS executions_active ON executions (flow_sid, k, sid) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS executions_ended ON executions (date_updated) WHERE status = 'ended';
CREATE TABLE IF NOT EXISTS steps (
    execution_sid TEXT NOT NULL,
    sid TEXT NOT NULL,
    idx INTEGER NOT NULL,
    date_updated REAL NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (execution_sid, sid)
);
CREATE INDEX IF NOT EXISTS steps_by_sid ON steps (sid);
CREATE TABLE IF NOT EXISTS orphans (execution_sid TEXT PRIMARY KEY, since REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted (sid TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deleted_at ON deleted (at);
CREATE TABLE IF NOT EXISTS pending (key TEXT PRIMARY KEY, since REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL);
"""

_TABLES = ("executions", "steps", "orphans", "deleted", "pending", "offsets")

_UPSERT_STEP = ("INSERT INTO steps (execution_sid, sid, idx, date_updated, raw) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (execution_sid, sid) DO UPDATE SET idx = excluded.idx, "
                "date_updated = excluded.date_updated, raw = excluded.raw "
                "WHERE excluded.date_updated >= steps.date_updated")

#: Executions deleted per write transaction when retention catches up (keeps each writer job short).
_CHUNK = 2000
#: Pages handed back to the file system per writer job (4 KiB pages: 16 MiB).
_VACUUM_PAGES = 4096


class SqliteHistoryStore:
    """``HistoryStore`` on a SQLite file; see ``history_store.py`` for the rules it keeps."""

    def __init__(self, path: Path, retention: float = 30 * 24 * 3600.0, clock: Clock | None = None,
                 orphan_grace: float = 300.0, deleted_memory: float = 900.0, cache_kib: int = 8192) -> None:
        self.path = path
        self.retention = retention
        self.clock = clock or SystemClock()
        self.orphan_grace = orphan_grace
        self.deleted_memory = deleted_memory
        self.cache_kib = cache_kib
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="history-writer")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        # Mirrors of two small tables (bounded by deleted_memory and orphan_grace), so applying a record
        # costs no lookups: owned by the writer thread.
        self._deleted: dict[str, float] = {}
        self._orphans: set[str] = set()
        # Local writes (read-your-writes of REST creates and webhooks) waiting for the writer: under load many
        # arrive while one commits, and the next writer job applies them all in one transaction (a commit per
        # create cost ≈ 10 % of the ingress's CPU at 200 creates/s).
        self._local: list[tuple[bytes, bytes | None]] = []
        self._local_done: asyncio.Future[None] | None = None
        self._local_busy = False  # a group is with the writer; the next one forms meanwhile

    # -- lifecycle ------------------------------------------------------------------------------

    def _connect(self, creating: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        if creating:  # must precede anything that writes the file's header, WAL mode included
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; a power loss may drop the last transactions, and
        # their offsets with them, so they are read again from Kafka.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{int(self.cache_kib)}")
        conn.execute("PRAGMA journal_size_limit=67108864")  # the WAL shrinks back to 64 MiB after checkpoints
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    async def open(self) -> dict[int, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        offsets = await self._write(self._open_writer)
        self._rconn = self._connect()
        return offsets

    def _open_writer(self) -> dict[int, int]:
        conn = self._connect(creating=True)  # auto_vacuum only takes effect on a new file
        conn.executescript(_SCHEMA)
        self._wconn = conn
        self._deleted = dict(conn.execute("SELECT sid, at FROM deleted").fetchall())
        self._orphans = {row[0] for row in conn.execute("SELECT execution_sid FROM orphans")}
        return dict(conn.execute("SELECT partition, next FROM offsets").fetchall())

    async def offsets(self) -> dict[int, int]:
        return dict(self._r.execute("SELECT partition, next FROM offsets").fetchall())

    async def close(self) -> None:
        if self._wconn is not None:
            await self._write(self._wconn.close)
        if self._rconn is not None:
            self._rconn.close()
        self._writer.shutdown(wait=True)

    async def reset(self) -> None:
        def reset() -> None:
            with _transaction(self._w):
                for table in _TABLES:
                    self._w.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            self._deleted.clear()
            self._orphans.clear()
            self._w.executescript("PRAGMA incremental_vacuum;")
            self._w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._write(reset)

    async def _write(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    @property
    def _w(self) -> sqlite3.Connection:
        assert self._wconn is not None, "open() first"
        return self._wconn

    @property
    def _r(self) -> sqlite3.Connection:
        assert self._rconn is not None, "open() first"
        return self._rconn

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- writes -----------------------------------------------------------------------------------

    async def apply(self, records: list[TopicRecord]) -> None:
        if not records:
            return
        now = self.clock.now()
        await self._write(lambda: self._apply_records(records, now))
        self._notify()

    async def apply_local(self, key: bytes, value: bytes | None) -> None:
        """Write one record now (group commit: joins the writes queued behind the writer's current job)."""
        self._local.append((key, value))
        if self._local_done is None:
            self._local_done = asyncio.get_running_loop().create_future()
        done = self._local_done
        if not self._local_busy:
            self._local_busy = True
            asyncio.get_running_loop().call_soon(self._flush_local)
        await asyncio.shield(done)

    def _flush_local(self) -> None:
        """Hand the queued local writes to the writer as one transaction; later ones form the next group."""
        batch, done = self._local, self._local_done
        self._local, self._local_done = [], None
        now = self.clock.now()

        def apply() -> None:
            with _transaction(self._w):
                for key, value in batch:
                    self._apply_one(key, value, now)

        def finished(job: asyncio.Future[None]) -> None:
            assert done is not None
            if job.exception() is not None:
                done.set_exception(job.exception())  # type: ignore[arg-type]
            else:
                done.set_result(None)
                self._notify()
            if self._local:
                self._flush_local()
            else:
                self._local_busy = False
        asyncio.ensure_future(self._write(apply)).add_done_callback(finished)

    def _apply_records(self, records: list[TopicRecord], now: float) -> None:
        nexts: dict[int, int] = {}
        with _transaction(self._w):
            for partition, offset, key, value in records:
                self._apply_one(key, value, now)
                nexts[partition] = max(nexts.get(partition, 0), offset + 1)
            self._w.executemany("INSERT INTO offsets (partition, next) VALUES (?, ?) ON CONFLICT (partition) "
                                "DO UPDATE SET next = max(next, excluded.next)", list(nexts.items()))

    def _apply_one(self, key: bytes | None, value: bytes | None, now: float) -> None:
        if key is None:
            return
        sid = key.decode()
        if value is None:
            self._tombstone(sid, now)
            return
        try:
            record = decode(value)
        except DecodeError:
            log.warning("skipping an undecodable history record %r", key)
            return
        if isinstance(record, HistoryBatch):
            if record.execution and record.steps and not self._is_deleted(record.execution_sid,
                                                                           str(record.execution["flow_sid"])):
                self._w.executemany(_UPSERT_STEP, [  # the usual case: the sprint's steps with their snapshot
                    (step["execution_sid"], step["sid"], step["index"], step["date_updated"],
                     orjson.dumps({**step, "kind": StepRecord.kind})) for step in record.steps])
            else:
                for step in record.steps or ():
                    self._step(StepRecord(**step), orjson.dumps({**step, "kind": StepRecord.kind}), now)
            if record.execution:
                self._execution(ExecutionRecord(**record.execution),
                                orjson.dumps({**record.execution, "kind": ExecutionRecord.kind}), now)
        elif isinstance(record, ExecutionRecord):
            self._execution(record, value, now)
        elif isinstance(record, StepRecord):
            self._step(record, value, now)

    def _is_deleted(self, *sids: str) -> bool:
        return any(sid in self._deleted for sid in sids)

    def _execution(self, record: ExecutionRecord, raw: bytes, now: float) -> None:
        w = self._w
        if self._is_deleted(record.sid, record.flow_sid):
            w.execute("INSERT OR IGNORE INTO pending (key, since) VALUES (?, ?)", (record.sid, now))
            return
        # The snapshot replaces the held one only if its rank (ended, step_count, date_updated) is not lower;
        # date_created (k) never moves, so the list order is stable.
        w.execute(
            "INSERT INTO executions (sid, flow_sid, status, k, date_updated, step_count, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sid) DO UPDATE SET status = excluded.status, "
            "date_updated = excluded.date_updated, step_count = excluded.step_count, raw = excluded.raw "
            "WHERE (excluded.status = 'ended', excluded.step_count, excluded.date_updated) "
            ">= (executions.status = 'ended', executions.step_count, executions.date_updated)",
            (record.sid, record.flow_sid, record.status, -record.date_created, record.date_updated,
             record.step_count, raw))
        if record.sid in self._orphans:
            self._orphans.discard(record.sid)
            w.execute("DELETE FROM orphans WHERE execution_sid = ?", (record.sid,))

    def _step(self, record: StepRecord, raw: bytes, now: float) -> None:
        w = self._w
        if self._is_deleted(record.execution_sid, record.flow_sid):
            w.execute("INSERT OR IGNORE INTO pending (key, since) VALUES (?, ?)", (record.sid, now))
            return
        w.execute(_UPSERT_STEP, (record.execution_sid, record.sid, record.index, record.date_updated, raw))
        if (record.execution_sid not in self._orphans
                and w.execute("SELECT 1 FROM executions WHERE sid = ?", (record.execution_sid,)).fetchone() is None):
            self._orphans.add(record.execution_sid)
            w.execute("INSERT OR IGNORE INTO orphans (execution_sid, since) VALUES (?, ?)", (record.execution_sid, now))

    def _tombstone(self, sid: str, now: float) -> None:
        w = self._w
        w.execute("DELETE FROM pending WHERE key = ?", (sid,))
        if sid.startswith("FW"):  # a deleted flow: every execution of it, on every replica, from one record
            self._mark_deleted(sid, now)
            w.execute("DELETE FROM steps WHERE execution_sid IN (SELECT sid FROM executions WHERE flow_sid = ?)",
                      (sid,))
            w.execute("DELETE FROM executions WHERE flow_sid = ?", (sid,))
            return
        held = w.execute("DELETE FROM executions WHERE sid = ? RETURNING sid", (sid,)).fetchone()
        if held is not None or sid.startswith("FN"):
            self._mark_deleted(sid, now)
            w.execute("DELETE FROM steps WHERE execution_sid = ?", (sid,))
            if sid in self._orphans:
                self._orphans.discard(sid)
                w.execute("DELETE FROM orphans WHERE execution_sid = ?", (sid,))
            return
        w.execute("DELETE FROM steps WHERE sid = ?", (sid,))

    def _mark_deleted(self, sid: str, now: float) -> None:
        self._deleted[sid] = now
        self._w.execute("INSERT INTO deleted (sid, at) VALUES (?, ?) ON CONFLICT (sid) DO UPDATE SET at = excluded.at",
                        (sid, now))

    # -- housekeeping -----------------------------------------------------------------------------

    async def housekeep(self, delay: float = 0.0) -> list[str]:
        """Retention, orphans, the deleted guard and pending tombstones; then give freed space back.

        Each chunk of work is its own job on the writer thread, so records read from the topic are applied
        in between: catching up on a large retention backlog never holds the history still.
        """
        now = self.clock.now()
        removed = 0
        while True:
            count = await self._write(lambda: self._expire_chunk(now))
            removed += count
            if count < _CHUNK:
                break
        keys = await self._write(lambda: self._tidy(now, delay))
        if removed:
            while await self._write(self._vacuum_step):
                pass
            await self._write(lambda: self._w.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            log.info("history retention removed %d executions", removed)
        self._notify()
        return keys

    def _expire_chunk(self, now: float) -> int:
        """Delete up to a chunk of ended executions past retention, with their steps; how many."""
        w = self._w
        with _transaction(w):
            sids = [row[0] for row in w.execute(
                "SELECT sid FROM executions WHERE status = 'ended' AND date_updated <= ? LIMIT ?",
                (now - self.retention, _CHUNK))]
            w.executemany("DELETE FROM steps WHERE execution_sid = ?", [(s,) for s in sids])
            w.executemany("DELETE FROM executions WHERE sid = ?", [(s,) for s in sids])
        return len(sids)

    def _tidy(self, now: float, delay: float) -> list[str]:
        w = self._w
        with _transaction(w):
            orphans = [row[0] for row in w.execute(
                "SELECT execution_sid FROM orphans WHERE since <= ?", (now - self.orphan_grace - delay,))]
            for execution_sid in orphans:
                if w.execute("SELECT 1 FROM executions WHERE sid = ?", (execution_sid,)).fetchone() is None:
                    w.execute("DELETE FROM steps WHERE execution_sid = ?", (execution_sid,))
                w.execute("DELETE FROM orphans WHERE execution_sid = ?", (execution_sid,))
                self._orphans.discard(execution_sid)
            w.execute("DELETE FROM deleted WHERE at <= ?", (now - self.deleted_memory,))
            self._deleted = {sid: at for sid, at in self._deleted.items() if at > now - self.deleted_memory}
            return [row[0] for row in w.execute("DELETE FROM pending WHERE since <= ? RETURNING key", (now - delay,))]

    def _vacuum_step(self) -> bool:
        """Hand up to 16 MiB of free pages back to the file system; whether any are left."""
        # executescript steps the pragma to its end (a plain execute frees one page per call).
        self._w.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES});")
        return int(self._w.execute("PRAGMA freelist_count").fetchone()[0]) > 0

    async def retry(self, keys: list[str]) -> None:
        now = self.clock.now()

        def retry() -> None:
            with _transaction(self._w):
                self._w.executemany("INSERT OR IGNORE INTO pending (key, since) VALUES (?, ?)",
                                    [(key, now) for key in keys])
        await self._write(retry)

    # -- reads (on the event loop's connection) ----------------------------------------------------

    def _visible_after(self) -> float:
        """Ended executions updated at or before this instant are past retention."""
        return self.clock.now() - self.retention

    async def execution(self, sid: str) -> ExecutionRecord | None:
        row = self._r.execute("SELECT k, status, date_updated, raw FROM executions WHERE sid = ?", (sid,)).fetchone()
        if row is None or (row[1] == "ended" and row[2] <= self._visible_after()):
            return None
        return execution_record(row[0], row[3])

    async def known(self, sid: str) -> bool:
        r = self._r
        return (r.execute("SELECT 1 FROM executions WHERE sid = ?", (sid,)).fetchone() is not None
                or r.execute("SELECT 1 FROM deleted WHERE sid = ?", (sid,)).fetchone() is not None)

    async def list_executions(self, query: ListQuery) -> Page:
        # The status literal (not a parameter) lets SQLite pick the partial index of active executions.
        where = ["flow_sid = ?", "(status != 'ended' OR date_updated > ?)"]
        args: list[Any] = [query.flow_sid, self._visible_after()]
        if query.status in ("active", "ended"):
            where.append(f"status = '{query.status}'")
        for bound, op in ((query.low, ">="), (query.high, "<="), (query.after, ">"), (query.before, "<")):
            if bound is not None:
                where.append(f"(k, sid) {op} (?, ?)")
                args.extend(bound)
        backwards = query.before is not None
        order = "k DESC, sid DESC" if backwards else "k, sid"
        rows = self._r.execute(f"SELECT k, sid, raw FROM executions WHERE {' AND '.join(where)} "  # noqa: S608
                               f"ORDER BY {order} LIMIT ?", (*args, query.limit)).fetchall()
        if backwards:
            rows.reverse()
        return Page([(k, sid) for k, sid, _ in rows], {sid: execution_record(k, raw) for k, sid, raw in rows})

    async def execution_sids(self, flow_sid: str, status: str | None = None) -> list[str]:
        where = "flow_sid = ?" + (f" AND status = '{status}'" if status in ("active", "ended") else "")
        return [row[0] for row in self._r.execute(f"SELECT sid FROM executions WHERE {where} ORDER BY k, sid",  # noqa: S608
                                                  (flow_sid,))]

    async def steps_of(self, execution_sid: str) -> list[StepRecord]:
        rows = self._r.execute("SELECT raw FROM steps WHERE execution_sid = ? ORDER BY idx", (execution_sid,))
        return [decode_as(raw, StepRecord) for (raw,) in rows]

    async def step(self, execution_sid: str, step_sid: str) -> StepRecord | None:
        row = self._r.execute("SELECT raw FROM steps WHERE execution_sid = ? AND sid = ?",
                              (execution_sid, step_sid)).fetchone()
        return None if row is None else decode_as(row[0], StepRecord)

    async def known_steps(self, execution_sid: str) -> int:
        return int(self._r.execute("SELECT count(*) FROM steps WHERE execution_sid = ?", (execution_sid,)).fetchone()[0])

    async def keys_of(self, execution_sid: str) -> list[str]:
        steps = [row[0] for row in self._r.execute("SELECT sid FROM steps WHERE execution_sid = ? ORDER BY idx",
                                                   (execution_sid,))]
        return [*steps, execution_sid]

    async def changed(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    async def sizes(self) -> dict[str, int]:
        return {table: int(self._r.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
                for table in ("executions", "steps", "orphans", "deleted", "pending")}


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if kind is not None else "COMMIT")

