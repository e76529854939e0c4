"""The shared history backend: PostgreSQL, one copy for every ingress replica.

Every replica reads from the same tables. The history topic is written into
them by a Kafka consumer group of the replicas (``follow_history_group``), so
each partition is written by one replica at a time; the offsets applied live in
PostgreSQL, in the same transaction as the rows, and a new owner of a partition
resumes from them. A replica's own writes (the execution a REST create or a
webhook just started, tombstones of a delete) go straight to the tables, so
every replica sees them at once. Writers ``NOTIFY`` after each batch; replicas
``LISTEN``, so a read waiting for a record wakes when any replica wrote it.

Executions and steps are partitioned by the day they were created. Retention
deletes ended executions past it, row by row (reads already hide them), and
drops whole day partitions once nothing in them can still be visible: an
execution created on day D ends by D + expiry, and is gone by D + expiry +
retention. The rules are those of ``history_store.py``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import asyncpg
import orjson

from shared.clock import Clock, SystemClock
from shared.messages import DecodeError, ExecutionRecord, HistoryBatch, StepRecord, decode

from .history_store import ListQuery, Page, TopicRecord, decode_as, execution_record

__all__ = ["PostgresHistoryStore"]

log = logging.getLogger(__name__)

DAY = 86400.0
_CHANNEL = "switchboard_history"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history_executions (
    sid text NOT NULL, flow_sid text NOT NULL, status text NOT NULL,
    k double precision NOT NULL, date_created double precision NOT NULL, date_updated double precision NOT NULL,
    step_count integer NOT NULL, raw bytea NOT NULL,
    PRIMARY KEY (sid, date_created)
) PARTITION BY RANGE (date_created);
CREATE INDEX IF NOT EXISTS history_executions_sid ON history_executions (sid);
CREATE INDEX IF NOT EXISTS history_executions_by_flow ON history_executions (flow_sid, k, sid);
CREATE INDEX IF NOT EXISTS history_executions_active ON history_executions (flow_sid, k, sid) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS history_executions_ended ON history_executions (date_updated) WHERE status = 'ended';
CREATE TABLE IF NOT EXISTS history_steps (
    execution_sid text NOT NULL, sid text NOT NULL, idx integer NOT NULL,
    date_created double precision NOT NULL, date_updated double precision NOT NULL, raw bytea NOT NULL,
    PRIMARY KEY (execution_sid, sid, date_created)
) PARTITION BY RANGE (date_created);
CREATE INDEX IF NOT EXISTS history_steps_sid ON history_steps (sid);
CREATE TABLE IF NOT EXISTS history_orphans (execution_sid text PRIMARY KEY, since double precision NOT NULL);
CREATE TABLE IF NOT EXISTS history_deleted (sid text PRIMARY KEY, at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS history_pending (key text PRIMARY KEY, since double precision NOT NULL);
CREATE TABLE IF NOT EXISTS history_offsets (topic text NOT NULL, partition integer NOT NULL, next bigint NOT NULL,
                                            PRIMARY KEY (topic, partition));
"""

_UPSERT_EXECUTION = """
INSERT INTO history_executions AS t (sid, flow_sid, status, k, date_created, date_updated, step_count, raw)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (sid, date_created) DO UPDATE SET status = excluded.status, date_updated = excluded.date_updated,
    step_count = excluded.step_count, raw = excluded.raw
WHERE (excluded.status = 'ended', excluded.step_count, excluded.date_updated)
   >= (t.status = 'ended', t.step_count, t.date_updated)
"""

_UPSERT_STEP = """
INSERT INTO history_steps AS t (execution_sid, sid, idx, date_created, date_updated, raw)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (execution_sid, sid, date_created) DO UPDATE SET idx = excluded.idx, date_updated = excluded.date_updated,
    raw = excluded.raw
WHERE excluded.date_updated >= t.date_updated
"""


def _day(when: float) -> int:
    return math.floor(when / DAY)


class PostgresHistoryStore:
    """``HistoryStore`` on PostgreSQL; ``topic`` names whose offsets it keeps."""

    def __init__(self, dsn: str, topic: str, retention: float = 30 * 24 * 3600.0, clock: Clock | None = None,
                 expiry: float = 30 * 24 * 3600.0, orphan_grace: float = 300.0, deleted_memory: float = 900.0,
                 pool_size: int = 8) -> None:
        self.dsn, self.topic = dsn, topic
        self.retention, self.expiry = retention, expiry
        self.clock = clock or SystemClock()
        self.orphan_grace, self.deleted_memory = orphan_grace, deleted_memory
        self.pool_size = pool_size
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._days: set[tuple[str, int]] = set()  # partitions known to exist

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> dict[int, int]:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(7305)")  # one replica creates the schema at a time
            try:
                await conn.execute(_SCHEMA)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(7305)")
            rows = await conn.fetch("SELECT partition, next FROM history_offsets WHERE topic = $1", self.topic)
        self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(_CHANNEL, lambda *_: self._notify())
        return {row["partition"]: row["next"] for row in rows}

    async def offsets(self) -> dict[int, int]:
        rows = await self.pool.fetch("SELECT partition, next FROM history_offsets WHERE topic = $1", self.topic)
        return {row["partition"]: row["next"] for row in rows}

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        if self._pool is not None:
            await self._pool.close()

    async def reset(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("TRUNCATE history_executions, history_steps, history_orphans, history_deleted, "
                               "history_pending")
            await conn.execute("DELETE FROM history_offsets WHERE topic = $1", self.topic)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "open() first"
        return self._pool

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _partitions(self, table: str, days: set[int]) -> None:
        """Make sure the day partitions exist, before (outside) the write's transaction.

        Replicas may need the same new day at the same moment: creation is serialized by an advisory lock
        (``IF NOT EXISTS`` alone still races in the catalog), and it runs on its own connection, because a
        failed statement inside the write's transaction would abort the whole batch.
        """
        missing = sorted(day for day in days if (table, day) not in self._days)
        if not missing:
            return
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(7306)")
            try:
                for day in missing:
                    await conn.execute(f"CREATE TABLE IF NOT EXISTS {table}_d{day} PARTITION OF {table} "
                                       f"FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})")
                    self._days.add((table, day))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(7306)")

    # -- writes -----------------------------------------------------------------------------------

    async def apply(self, records: list[TopicRecord]) -> None:
        if not records:
            return
        nexts: dict[int, int] = {}
        for partition, offset, _, _ in records:
            nexts[partition] = max(nexts.get(partition, 0), offset + 1)
        await self._apply([(key, value) for _, _, key, value in records], nexts)

    async def apply_local(self, key: bytes, value: bytes | None) -> None:
        await self._apply([(key, value)], {})

    async def _apply(self, records: list[tuple[bytes | None, bytes | None]], nexts: dict[int, int]) -> None:
        try:
            await self._apply_once(records, nexts)
        except asyncpg.CheckViolationError:  # "no partition of relation found": another replica dropped a day
            self._days.clear()
            await self._apply_once(records, nexts)

    async def _apply_once(self, records: list[tuple[bytes | None, bytes | None]], nexts: dict[int, int]) -> None:
        now = self.clock.now()
        ordered = _decode_all(records)
        await self._partitions("history_executions",
                               {_day(item[0].date_created) for kind, item in ordered if kind == "execution"})
        await self._partitions("history_steps", {_day(item[0].date_created) for kind, item in ordered if kind == "step"})
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = {row["sid"] for row in await conn.fetch(
                "SELECT sid FROM history_deleted WHERE sid = ANY($1::text[])", list(_mentioned(ordered)))}
            # Runs of records between tombstones go in two statements each (steps, then snapshots): a batch of
            # thousands of records costs a few round trips, not one per row.
            run: list[tuple[str, Any]] = []
            for kind, item in [*ordered, ("end", None)]:
                if kind in ("tombstone", "end"):
                    await self._write_run(conn, run, deleted, now)
                    run = []
                    if kind == "tombstone":
                        await self._tombstone(conn, item, now)
                        deleted.add(item)
                else:
                    run.append((kind, item))
            if nexts:
                await conn.executemany(
                    "INSERT INTO history_offsets (topic, partition, next) VALUES ($1, $2, $3) ON CONFLICT "
                    "(topic, partition) DO UPDATE SET next = GREATEST(history_offsets.next, excluded.next)",
                    [(self.topic, p, n) for p, n in nexts.items()])
            await conn.execute(f"NOTIFY {_CHANNEL}")
        self._notify()

    async def _write_run(self, conn: asyncpg.Connection, run: list[tuple[str, Any]], deleted: set[str],
                         now: float) -> None:
        steps = [item for kind, item in run if kind == "step"]
        executions = [item for kind, item in run if kind == "execution"]
        gone = [(r.sid, now) for r, _ in steps + executions if r.sid in deleted or _owner(r) in deleted
                or r.flow_sid in deleted]
        steps = [(r, raw) for r, raw in steps if r.execution_sid not in deleted and r.flow_sid not in deleted]
        executions = [(r, raw) for r, raw in executions if r.sid not in deleted and r.flow_sid not in deleted]
        if gone:
            await conn.executemany("INSERT INTO history_pending (key, since) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                   gone)
        if steps:
            await conn.executemany(_UPSERT_STEP, [(r.execution_sid, r.sid, r.index, r.date_created, r.date_updated, raw)
                                                  for r, raw in steps])
        if executions:
            # The first date_created stays (it is the list's sort key and the partition): a replayed snapshot that
            # disagrees is written under the one held.
            first = {row["sid"]: row["date_created"] for row in await conn.fetch(
                "SELECT sid, date_created FROM history_executions WHERE sid = ANY($1::text[])",
                list({r.sid for r, _ in executions}))}
            rows = []
            for r, raw in executions:
                created = first.setdefault(r.sid, r.date_created)
                rows.append((r.sid, r.flow_sid, r.status, -created, created, r.date_updated, r.step_count, raw))
            await conn.executemany(_UPSERT_EXECUTION, rows)
        with_snapshot = {r.sid for r, _ in executions}
        unknown = {r.execution_sid for r, _ in steps} - with_snapshot
        if unknown:  # steps without their execution in this run: orphans unless it is already stored
            held = {row["sid"] for row in await conn.fetch(
                "SELECT sid FROM history_executions WHERE sid = ANY($1::text[])", list(unknown))}
            if unknown - held:
                await conn.executemany("INSERT INTO history_orphans (execution_sid, since) VALUES ($1, $2) "
                                       "ON CONFLICT DO NOTHING", [(sid, now) for sid in unknown - held])
        if with_snapshot:
            await conn.execute("DELETE FROM history_orphans WHERE execution_sid = ANY($1::text[])", list(with_snapshot))

    async def _tombstone(self, conn: asyncpg.Connection, sid: str, now: float) -> None:
        await conn.execute("DELETE FROM history_pending WHERE key = $1", sid)
        mark = ("INSERT INTO history_deleted (sid, at) VALUES ($1, $2) "
                "ON CONFLICT (sid) DO UPDATE SET at = excluded.at")
        if sid.startswith("FW"):
            await conn.execute(mark, sid, now)
            await conn.execute("DELETE FROM history_steps WHERE execution_sid IN "
                               "(SELECT sid FROM history_executions WHERE flow_sid = $1)", sid)
            await conn.execute("DELETE FROM history_executions WHERE flow_sid = $1", sid)
            return
        held = await conn.fetchval("DELETE FROM history_executions WHERE sid = $1 RETURNING sid", sid)
        if held is not None or sid.startswith("FN"):
            await conn.execute(mark, sid, now)
            await conn.execute("DELETE FROM history_steps WHERE execution_sid = $1", sid)
            await conn.execute("DELETE FROM history_orphans WHERE execution_sid = $1", sid)
            return
        await conn.execute("DELETE FROM history_steps WHERE sid = $1", sid)

    # -- housekeeping -----------------------------------------------------------------------------

    async def housekeep(self, delay: float = 0.0) -> list[str]:
        now = self.clock.now()
        removed = 0
        async with self.pool.acquire() as conn:
            while True:
                async with conn.transaction():
                    sids = [row["sid"] for row in await conn.fetch(
                        # by key, not ctid: a ctid is only unique within one partition
                        "DELETE FROM history_executions WHERE (sid, date_created) IN (SELECT sid, date_created "
                        "FROM history_executions WHERE status = 'ended' AND date_updated <= $1 LIMIT 2000) RETURNING sid",
                        now - self.retention)]
                    if sids:
                        await conn.execute("DELETE FROM history_steps WHERE execution_sid = ANY($1::text[])", sids)
                removed += len(sids)
                if len(sids) < 2000:
                    break
            async with conn.transaction():
                orphans = [row["execution_sid"] for row in await conn.fetch(
                    "DELETE FROM history_orphans WHERE since <= $1 RETURNING execution_sid",
                    now - self.orphan_grace - delay)]
                if orphans:
                    await conn.execute("DELETE FROM history_steps WHERE execution_sid = ANY($1::text[]) AND NOT EXISTS "
                                       "(SELECT 1 FROM history_executions e WHERE e.sid = history_steps.execution_sid)",
                                       orphans)
                await conn.execute("DELETE FROM history_deleted WHERE at <= $1", now - self.deleted_memory)
                keys = [row["key"] for row in await conn.fetch(
                    "DELETE FROM history_pending WHERE since <= $1 RETURNING key", now - delay)]
            dropped = await self._drop_old_partitions(conn, now)
        if removed or dropped:
            log.info("history retention", extra={"fields": {"removed": removed, "partitions_dropped": dropped}})
        self._notify()
        return keys

    async def _drop_old_partitions(self, conn: asyncpg.Connection, now: float) -> int:
        """Drop day partitions nothing in which can still be visible (created before now − expiry − retention)."""
        horizon = _day(now - self.expiry - self.retention) - 1
        dropped = 0
        for table in ("history_executions", "history_steps"):
            rows = await conn.fetch("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 AND c.relkind = 'r'", table)
            for row in rows:
                name = row["relname"]
                day = int(name.rsplit("_d", 1)[1])
                if day < horizon:
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
                    self._days.discard((table, day))
                    dropped += 1
        return dropped

    async def retry(self, keys: list[str]) -> None:
        now = self.clock.now()
        async with self.pool.acquire() as conn:
            await conn.executemany("INSERT INTO history_pending (key, since) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                   [(key, now) for key in keys])

    # -- reads ------------------------------------------------------------------------------------

    def _visible_after(self) -> float:
        return self.clock.now() - self.retention

    async def execution(self, sid: str) -> ExecutionRecord | None:
        row = await self.pool.fetchrow("SELECT k, status, date_updated, raw FROM history_executions WHERE sid = $1",
                                       sid)
        if row is None or (row["status"] == "ended" and row["date_updated"] <= self._visible_after()):
            return None
        return execution_record(row["k"], row["raw"])

    async def known(self, sid: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM history_executions WHERE sid = $1) "
            "OR EXISTS (SELECT 1 FROM history_deleted WHERE sid = $1)", sid))

    async def list_executions(self, query: ListQuery) -> Page:
        where = ["flow_sid = $1", "(status <> 'ended' OR date_updated > $2)"]
        args: list[Any] = [query.flow_sid, self._visible_after()]
        if query.status in ("active", "ended"):
            where.append(f"status = '{query.status}'")
        for bound, op in ((query.low, ">="), (query.high, "<="), (query.after, ">"), (query.before, "<")):
            if bound is not None:
                where.append(f"(k, sid) {op} (${len(args) + 1}, ${len(args) + 2})")
                args.extend(bound)
        backwards = query.before is not None
        order = "k DESC, sid DESC" if backwards else "k, sid"
        rows = await self.pool.fetch(f"SELECT k, sid, raw FROM history_executions WHERE {' AND '.join(where)} "  # noqa: S608
                                     f"ORDER BY {order} LIMIT {int(query.limit)}", *args)
        if backwards:
            rows = list(reversed(rows))
        return Page([(row["k"], row["sid"]) for row in rows],
                    {row["sid"]: execution_record(row["k"], row["raw"]) for row in rows})

    async def execution_sids(self, flow_sid: str, status: str | None = None) -> list[str]:
        where = "flow_sid = $1" + (f" AND status = '{status}'" if status in ("active", "ended") else "")
        return [row["sid"] for row in await self.pool.fetch(
            f"SELECT sid FROM history_executions WHERE {where} ORDER BY k, sid", flow_sid)]  # noqa: S608

    async def steps_of(self, execution_sid: str) -> list[StepRecord]:
        rows = await self.pool.fetch("SELECT raw FROM history_steps WHERE execution_sid = $1 ORDER BY idx",
                                     execution_sid)
        return [decode_as(row["raw"], StepRecord) for row in rows]

    async def step(self, execution_sid: str, step_sid: str) -> StepRecord | None:
        raw = await self.pool.fetchval("SELECT raw FROM history_steps WHERE execution_sid = $1 AND sid = $2",
                                       execution_sid, step_sid)
        return None if raw is None else decode_as(raw, StepRecord)

    async def known_steps(self, execution_sid: str) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM history_steps WHERE execution_sid = $1",
                                            execution_sid))

    async def keys_of(self, execution_sid: str) -> list[str]:
        rows = await self.pool.fetch("SELECT sid FROM history_steps WHERE execution_sid = $1 ORDER BY idx",
                                     execution_sid)
        return [*(row["sid"] for row in rows), execution_sid]

    async def changed(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    async def sizes(self) -> dict[str, int]:
        out = {}
        for name, table in (("executions", "history_executions"), ("steps", "history_steps"),
                            ("orphans", "history_orphans"), ("deleted", "history_deleted"),
                            ("pending", "history_pending")):
            out[name] = int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
        return out


def _decode_all(records: list[tuple[bytes | None, bytes | None]]) -> list[tuple[str, Any]]:
    """The records as ``(kind, item)`` in order: ``tombstone`` (a sid), ``step``/``execution`` (record, raw JSON)."""
    ordered: list[tuple[str, Any]] = []
    for key, value in records:
        if key is None:
            continue
        if value is None:
            ordered.append(("tombstone", key.decode()))
            continue
        try:
            record = decode(value)
        except DecodeError:
            log.warning("skipping an undecodable history record %r", key)
            continue
        if isinstance(record, HistoryBatch):
            for step in record.steps or ():  # steps first: the snapshot that follows counts them
                ordered.append(("step", (StepRecord(**step), orjson.dumps({**step, "kind": StepRecord.kind}))))
            if record.execution:
                ordered.append(("execution", (ExecutionRecord(**record.execution),
                                              orjson.dumps({**record.execution, "kind": ExecutionRecord.kind}))))
        elif isinstance(record, ExecutionRecord):
            ordered.append(("execution", (record, value)))
        elif isinstance(record, StepRecord):
            ordered.append(("step", (record, value)))
    return ordered


def _owner(record: ExecutionRecord | StepRecord) -> str:
    return record.execution_sid if isinstance(record, StepRecord) else record.sid


def _mentioned(ordered: list[tuple[str, Any]]) -> set[str]:
    sids: set[str] = set()
    for kind, item in ordered:
        if kind == "step":
            sids.update((item[0].execution_sid, item[0].flow_sid))
        elif kind == "execution":
            sids.update((item[0].sid, item[0].flow_sid))
    return sids

