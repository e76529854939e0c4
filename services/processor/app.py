"""The processor's composition root: a faust app whose one agent hosts the state machine.

The agent decodes an event, loads the route's and execution's state from two
tables, calls the pure ``handle``, writes the new state back and sends the
commands and history records. faust flushes the producer before it commits an
offset, so a crash replays events whose effects may be missing, never the
reverse; the state machine recognises replays by their wait tokens.

The agent runs with ``concurrency=1`` (faust-streaming#606: higher concurrency
can commit past an unprocessed event); scale by partitions and replicas.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.clock import Clock, SystemClock
from shared.flow_catalog import FlowCatalog, follow_flows
from shared.kafka import make_reader, read_all_partitions
from shared.messages import (
    CancelTimer,
    HttpRequest,
    Reply,
    ScheduleTimer,
    encode,
    history_batch,
)
from shared.settings import Settings
from shared.topics import processor_app_id

from .counting import count_applied
from .faust_fixes import (
    drain_buffer_before_commit,
    idempotent_producer,
    seek_unread_to_beginning,
    track_confirmed_commits,
)
from .gaps import GapDetector, read_range
from .intake import apply_event, decode_event, wait_for_flows
from .reply_sender import install_reply_sender
from .route_sweep import SweepCandidates, droppable, idle, idle_applied
from .runner import Outcome
from .sprint import Env
from .state import decode_route_record, encode_route_record

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, clock: Clock | None = None, worker_id: str = "0") -> faust.App:
    clock = clock or SystemClock()
    datadir = Path(settings.processor_data_dir or f"/tmp/switchboard-processor-{settings.topic_prefix}{worker_id}")
    datadir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        processor_app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=f"{settings.processor_store}://",
        topic_partitions=settings.event_partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=True,
        web_bind=settings.ingress_host,
        web_port=settings.processor_port,
        web_in_thread=False,
        producer_acks=-1,
        producer_linger_ms=settings.processor_linger_ms,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        # A SIGKILLed worker's partitions move after the session timeout: 10 s, not faust's 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        consumer_group_instance_id=settings.processor_instance_id or None,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        key_serializer="raw",  # our own codec (shared.messages) does all (de)serialization
        value_serializer="raw",
        table_cleanup_interval=3600.0,
        datadir=str(datadir),
        # faust's worker replaces the root logger's handlers with its own (coloured text) when it starts:
        # hand it ours (configure_logging ran first), so processor logs stay one JSON object per line.
        loghandlers=list(logging.getLogger().handlers),
        logging_config={"version": 1, "disable_existing_loggers": False, "root": {"level": settings.log_level.upper()}},
    )
    drain_buffer_before_commit(app)
    idempotent_producer(app)
    seek_unread_to_beginning(app, {settings.topic("events")})
    confirmed = track_confirmed_commits(app)
    replies = install_reply_sender(app, settings)
    events = app.topic(settings.topic("events"), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", internal=False)
    # Rows of routes with no active execution, deleted once their events are committed (route_sweep.py).
    candidates = SweepCandidates()

    async def on_changelog_record(event: Any) -> None:
        """Recovery: a row read back with no active execution may be one a crash left behind; a tombstone is not."""
        message = event.message
        applied = idle_applied(message.value)
        if applied is None:
            candidates.forget(message.partition, message.key)
        else:
            candidates.note(message.partition, message.key, applied)

    # One row per route (flow + contact) holds its bookkeeping and active executions: one changelog write per event.
    routes = app.Table("routes", partitions=settings.event_partitions, key_type=bytes, value_type=bytes,
                       on_changelog_event=on_changelog_record, options=store_options(settings))
    catalog = FlowCatalog()
    topics = {name: settings.topic(name) for name in ("http-requests", "timers", "replies", "history")}

    @app.task
    async def load_flows() -> None:
        reader = make_reader(settings, "processor-flows", bulk=True)
        await reader.start()
        try:
            await read_all_partitions(reader, settings.topic("flows"))
            await follow_flows(reader, catalog)
        finally:
            await reader.stop()

    async def publish(outcome: Outcome) -> None:
        async def send(topic: str, key: bytes, value: bytes | None, partition: int | None, *rest: Any) -> Any:
            delivery = await app.producer.send(topic, key, value, partition, *rest)
            return metrics.watch_delivery(topic.removeprefix(settings.topic_prefix), delivery)  # delivery errors

        for command in outcome.commands:
            if isinstance(command, HttpRequest):
                state = outcome.executions.get(command.execution_sid)
                if state is not None and state.reply_id:  # a webhook waits for this request's result
                    await replies.send(topics["http-requests"], command.execution_sid.encode(), encode(command), None)
                else:
                    await send(topics["http-requests"], command.execution_sid.encode(), encode(command), None, None,
                               None)
            elif isinstance(command, ScheduleTimer):
                await send(topics["timers"], command.timer_id.encode(), encode(command), None, None, None)
            elif isinstance(command, CancelTimer):
                await send(topics["timers"], command.timer_id.encode(), None, None, None, None)
            elif isinstance(command, Reply):
                partition = command.partition if command.partition >= 0 else None
                await replies.send(topics["replies"], command.reply_id.encode(), encode(command), partition)
        # One message per execution and sprint, keyed by execution sid (ordered on one partition).
        for batch in history_batch(outcome.records):
            await send(topics["history"], batch.execution_sid.encode(), encode(batch), None, None, None)

    async def handle_record(key: bytes, value: bytes | None, tp: Any, offset: int) -> None:
        """Decode one event, run the state machine on it, store the route's row, send the outputs."""
        message = decode_event(value, offset)
        if message is None:
            return
        await wait_for_flows(catalog, message, clock)
        route, executions = decode_route_record(routes.get(key))
        env = Env(now=clock.now(), settings=settings, flows=catalog.definition, offset=offset,
                  committed=_committed(app, tp), latest_revision=catalog.latest_revision)
        outcome = apply_event(message, route, executions, env)
        if outcome is None:
            return
        if outcome.route.empty and not executions:
            routes.pop(key, None)  # a route that never had an execution: nothing to protect
        else:
            routes[key] = encode_route_record(outcome.route, executions)
            if idle(outcome.route, executions):
                candidates.note(tp.partition, key, outcome.route.applied)
        await publish(outcome)
        if outcome.replayed:
            log.info("re-sent the outputs of an event applied before a restart", extra={"fields": {
                "offset": env.offset, "commands": len(outcome.commands), "records": len(outcome.records)}})
            metrics.PROCESSOR_EVENTS.labels(message.kind, "replayed").inc()
        else:
            count_applied(message.kind, outcome.records)

    gaps = GapDetector()
    gap_reader: list[Any] = []  # made on first use, inside the running loop

    async def fill_gap(tp: Any, start: int, end: int) -> None:
        """Read back and handle the events faust skipped on ``tp`` (``gaps.py``)."""
        if not gap_reader:
            reader = make_reader(settings, "processor-gaps")
            await reader.start()
            gap_reader.append(reader)
        records = await read_range(gap_reader[0], tp.topic, tp.partition, start, end)
        log.warning("events were skipped by the consumer; read back and handled", extra={"fields": {
            "partition": tp.partition, "from": start, "to": end, "records": len(records)}})
        for record in records:
            metrics.PROCESSOR_EVENTS.labels("skipped", "refetched").inc()
            await handle_record(record.key, record.value, tp, record.offset)

    # A crashed agent must take the worker down (and be restarted), never sit there "ready" doing nothing.
    @app.agent(events, concurrency=1, supervisor_strategy=CrashingSupervisor)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            tp, offset = event.message.tp, event.message.offset
            gap = gaps.missing(tp, app.consumer_generation_id, offset, _committed(app, tp))
            if gap is not None:
                await fill_gap(tp, *gap)
            await handle_record(event.key, event.value, tp, offset)
            if tp.partition not in rediscovered:
                rediscovered.add(tp.partition)
                background.add(task := asyncio.create_task(rediscover(tp.partition)))
                task.add_done_callback(background.discard)
            sweep(tp)

    rediscovered: set[int] = set()
    background: set[asyncio.Task[None]] = set()

    async def rediscover(partition: int) -> None:
        """Note the idle rows of ``partition`` that are on local disk (rocksdb) from an earlier run of
        this process: their candidates were in memory, and recovery reads only the changelog's tail."""
        db = getattr(routes.data, "_dbs", {}).get(partition)  # rocksdb: one database per partition
        if db is None:
            return
        found = 0
        for index, (key, value) in enumerate(db.items()):
            applied = idle_applied(value)
            if applied is not None:
                candidates.note(partition, key, applied)
                found += 1
            if index % 10_000 == 9_999:
                await asyncio.sleep(0)  # a long scan must not hold up events
        if found:
            log.info("idle route rows found on local disk", extra={"fields": {"partition": partition, "rows": found}})

    def sweep(tp: Any) -> None:
        """Delete the rows of ``tp`` that no longer protect anything (inside the event: faust writes the
        tombstones to the current event's changelog partition)."""
        committed = confirmed.get(tp)
        for key in candidates.due(tp.partition, committed):
            stored = routes.get(key)
            if stored is None:
                continue
            route, executions = decode_route_record(stored)
            if droppable(route, executions, committed):
                routes.pop(key, None)

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/livez")
    async def livez(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: Any, request: Any) -> Any:
        # rebalancing_count: not ready before the first join of the group has begun (until then faust is not
        # "rebalancing" either, and a replica started beside others would say ready with no partitions yet).
        ready = (catalog.ready.is_set() and app.rebalancing_count > 0 and not app.rebalancing  # type: ignore[attr-defined]
                 and not app.tables.recovery.in_recovery)  # type: ignore[attr-defined]
        return self.json({"status": "ready" if ready else "not ready"}, status=200 if ready else 503)

    app.catalog = catalog  # type: ignore[attr-defined]
    return app


def store_options(settings: Settings) -> dict[str, Any] | None:
    """RocksDB's memory per partition: faust's defaults (2 GiB block cache, 3 x 64 MiB memtables, per
    partition) would let a processor with 8 partitions grow past 16 GiB; rows are read once per event,
    so a small cache costs little (the OS page cache keeps the files)."""
    if settings.processor_store != "rocksdb":
        return None
    return {
        "driver": "rocksdict",
        "write_buffer_size": 4 * 1024 * 1024,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * 1024 * 1024,
        "block_cache_size": 8 * 1024 * 1024,
        "block_cache_compressed_size": 0,
        "max_open_files": 256,
    }


def _committed(app: faust.App, tp: Any) -> int:
    """The partition's committed offset as faust tracks it (events below it are never redelivered); -1 if unknown."""
    committed = getattr(app.consumer, "_committed_offset", {}).get(tp)
    return committed if isinstance(committed, int) else -1
