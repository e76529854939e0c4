"""``make bench-scheduler``: one scheduler process holding 1,000,000 pending timers. Not a test.

What it does, on its own Kafka broker (started here, stopped by PID):

1. the raw Kafka floor (``bench.kafka_baseline``): produce→consume round trip and throughput;
2. starts one ``python -m services.scheduler`` and notes its idle RSS;
3. schedules ``--timers`` timers like the processor does (``ScheduleTimer`` keyed by timer id on the
   compacted ``timers`` topic): all but a window's worth due in 1–30 days, then ``--rate`` × ``--window``
   timers due at ``--rate`` per second starting a few seconds later — the schedule rate is measured at
   the producer (acks=all) and as the scheduler's indexing rate (its pending gauge);
4. with every timer pending, reads RSS (the memory figure: total RSS and (RSS − idle RSS) / timers);
5. collects every ``TimerFired`` while the window's timers come due: lateness = ``fired_at − due_at``
   (the scheduler's own) and received − due (end to end, through Kafka), p50/p99/max; checks each fired once;
6. SIGKILLs the scheduler, lets a few timers come due while it is down, restarts it and measures
   restart → ready (includes the consumer group noticing the dead member), the scheduler's own recovery
   gauge (assignment → every partition loaded) and records loaded per second; checks the overdue ones fire;
7. a raw consumer reads the whole ``timers`` topic, as a baseline for the recovery read.

Results: ``bench/results/<date>-scheduler.json`` and a printed table. ``--timers 100000`` for a short run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

if __package__ in (None, ""):  # ``python bench/scheduler_bench.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import summarize, table, write_result
from bench.kafka_baseline import measure_baseline
from devtools.kafka_broker import KafkaBroker, free_port
from services.scheduler.index import TimerIndex
from shared.ids import new_sid
from shared.messages import ScheduleTimer, TimerFired, decode, encode
from shared.settings import Settings
from shared.topics import create_topics

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0


def _status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


class Scheduler:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "SWITCHBOARD_SCHEDULER_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "services.scheduler"], cwd=ROOT, env=self.env,
                                     stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    async def metrics(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{self.port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
            text = await r.text()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, number = line.rpartition(" ")
                values[name] = float(number)
        return values

    async def metric(self, name: str) -> float:
        try:
            return (await self.metrics()).get(name, -1.0)
        except (TimeoutError, aiohttp.ClientError):
            return -1.0

    async def wait_ready(self, timeout: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"scheduler exited; see {self.log}")
            try:
                async with aiohttp.ClientSession() as session, session.get(
                        f"http://127.0.0.1:{self.port}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"scheduler not ready within {timeout}s; see {self.log}")

    async def wait_pending(self, count: int, timeout: float = 900) -> float:
        """Seconds until the pending gauge reaches ``count``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if await self.metric("switchboard_timers_pending") >= count:
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise TimeoutError(f"pending never reached {count}; see {self.log}")


class Fires:
    """Every TimerFired on the events topic, from the moment ``start`` is called."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: dict[str, list[tuple[float, float, float]]] = {}  # timer id -> [(due, fired_at, received)]
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=10, max_poll_records=20000)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.settings.topic("events"), p) for p in range(self.settings.event_partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batches.values():
                for record in records:
                    event = decode(record.value)
                    if isinstance(event, TimerFired):
                        self.seen.setdefault(event.timer_id, []).append((event.due_at, event.fired_at, now))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()


def _timer(due: float, flows: list[str], n: int) -> ScheduleTimer:
    # The processor's shapes: sids are "XX" + 32 hex, routes "flow sid:contact", tokens are step counts.
    return ScheduleTimer(new_sid("TM"), new_sid("FN"), f"{flows[n % len(flows)]}:+1555{n % 10**7:07d}",
                         str(n % 40), due)


async def _produce(producer: AIOKafkaProducer, topic: str, timers: Iterable[ScheduleTimer]) -> float:
    """Send and await all acks; return timers per second."""
    started = time.perf_counter()
    pending = []
    count = 0
    for timer in timers:
        pending.append(await producer.send(topic, encode(timer), key=timer.timer_id.encode()))
        count += 1
        if len(pending) >= 20000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return count / (time.perf_counter() - started)


async def _raw_read(settings: Settings) -> dict[str, float]:
    """Read the whole timers topic with a bare consumer (no decoding): the recovery floor."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
                                max_poll_records=20000)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic("timers"), p) for p in range(settings.event_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        started = time.perf_counter()
        records = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            records += sum(len(v) for v in batches.values())
        elapsed = time.perf_counter() - started
        return {"records": records, "seconds": elapsed, "records_per_s": records / elapsed}
    finally:
        await consumer.stop()


def _index_bytes_per_timer(count: int = 100_000) -> float:
    """The index alone, measured in this process with tracemalloc (no Kafka, no process baseline)."""
    import tracemalloc

    flows = [new_sid("FW") for _ in range(100)]
    timers = [_timer(time.time() + DAY + random.random() * 29 * DAY, flows, n) for n in range(count)]
    tracemalloc.start()
    index = TimerIndex()
    for t in timers:
        index.put(t.timer_id.encode(), t.due_at, t.execution_sid, t.route, t.token)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(index) == count
    return current / count


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    broker = KafkaBroker(workdir / "kafka", free_port(), free_port(), heap="1g")
    broker.start()
    scheduler: Scheduler | None = None
    try:
        env = {"SWITCHBOARD_KAFKA_BOOTSTRAP": broker.bootstrap, "SWITCHBOARD_TOPIC_PREFIX": "bench.",
               "SWITCHBOARD_LOG_JSON": "true", "SWITCHBOARD_LOG_LEVEL": "INFO",
               "SWITCHBOARD_SCHEDULER_INSTANCE_ID": "bench-scheduler-0" if args.static else ""}
        settings = Settings.from_env(env)
        create_topics(settings)
        out: dict[str, Any] = {"settings": {"timers": args.timers, "rate": args.rate, "window": args.window,
                                            "partitions": settings.event_partitions,
                                            "static_membership": args.static}}
        print("measuring the raw Kafka floor…", flush=True)
        out["baseline"] = await measure_baseline(broker.bootstrap, round_trips=args.round_trips)
        out["index_bytes_per_timer_tracemalloc"] = _index_bytes_per_timer()

        scheduler = Scheduler(env, workdir / "scheduler.log")
        scheduler.start()
        await scheduler.wait_ready()
        await asyncio.sleep(2)
        idle = _status(scheduler.pid)
        out["rss_idle_bytes"] = idle["VmRSS"]

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        fires = Fires(settings)
        try:
            flows = [new_sid("FW") for _ in range(100)]
            window_count = int(args.rate * args.window)
            far_count = args.timers - window_count
            now = time.time()
            far = (_timer(now + DAY + random.random() * 29 * DAY, flows, n) for n in range(far_count))
            print(f"scheduling {far_count} timers due in 1–30 days…", flush=True)
            produce_task = asyncio.create_task(_produce(producer, settings.topic("timers"), far))
            indexed_after = await scheduler.wait_pending(far_count)
            produce_rate = await produce_task
            out["schedule"] = {"timers": far_count, "producer_timers_per_s": produce_rate,
                               "indexed_timers_per_s": far_count / indexed_after}

            lead = 15.0
            first_due = time.time() + lead
            window = [_timer(first_due + i / args.rate, flows, far_count + i) for i in range(window_count)]
            await fires.start()
            print(f"scheduling {window_count} timers due at {args.rate:g}/s for {args.window:g} s…", flush=True)
            await _produce(producer, settings.topic("timers"), window)
            await scheduler.wait_pending(args.timers, timeout=max(5.0, first_due - time.time()))
            loaded = _status(scheduler.pid)
            out["memory"] = {"pending": int(await scheduler.metric("switchboard_timers_pending")),
                             "rss_bytes": loaded["VmRSS"], "rss_peak_bytes": loaded["VmHWM"],
                             "bytes_per_timer": (loaded["VmRSS"] - idle["VmRSS"]) / args.timers}
            print(f"{args.timers} pending, RSS {loaded['VmRSS'] / 2**20:.0f} MiB; firing…", flush=True)
            await asyncio.sleep(max(0.0, first_due + args.window + 5 - time.time()))
            wanted = {t.timer_id: t.due_at for t in window}
            got = {k: v for k, v in fires.seen.items() if k in wanted}
            lateness = [f[1] - f[0] for v in got.values() for f in v[:1]]
            e2e = [f[2] - f[0] for v in got.values() for f in v[:1]]
            early = sum(1 for v in got.values() if v[0][1] < v[0][0])
            out["firing"] = {"due": window_count, "fired": len(got), "fired_more_than_once": sum(
                1 for v in got.values() if len(v) > 1), "fired_early": early,
                "lateness_seconds": summarize(lateness), "end_to_end_lateness_seconds": summarize(e2e),
                "rss_bytes_after": _status(scheduler.pid)["VmRSS"]}

            # Crash and recover.
            pending_before = int(await scheduler.metric("switchboard_timers_pending"))
            scheduler.kill()
            killed_at = time.time()
            overdue = [_timer(killed_at + 2 + i / 1000, flows, args.timers + i) for i in range(1000)]
            await _produce(producer, settings.topic("timers"), overdue)
            await asyncio.sleep(max(0.0, killed_at + 4 - time.time()))
            print("scheduler killed; restarting…", flush=True)
            scheduler.start()
            ready_after = await scheduler.wait_ready()
            recovered = _status(scheduler.pid)
            recovery = await scheduler.metric("switchboard_timer_recovery_seconds")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(t.timer_id in fires.seen for t in overdue):
                await asyncio.sleep(0.2)
            overdue_fired = sum(1 for t in overdue if t.timer_id in fires.seen)
            pending_after = int(await scheduler.metric("switchboard_timers_pending"))
            loaded_records = _loaded_records(workdir / "scheduler.log")
            out["recovery"] = {"pending_before_kill": pending_before, "pending_after": pending_after,
                               "restart_to_ready_seconds": ready_after, "load_seconds": recovery,
                               "records_loaded": loaded_records,
                               "records_per_s": loaded_records / recovery if recovery > 0 else None,
                               "rss_bytes": recovered["VmRSS"], "rss_peak_bytes": recovered["VmHWM"],
                               "overdue_while_down": len(overdue), "overdue_fired": overdue_fired}
        finally:
            await fires.stop()
            await producer.stop()
        print("reading the timers topic raw…", flush=True)
        out["raw_timers_read"] = await _raw_read(settings)
        return out
    finally:
        if scheduler is not None:
            scheduler.stop()
        broker.stop()


def _loaded_records(log: Path) -> int:
    """Records the scheduler applied in its last recovery (from its 'timer partitions loaded' log lines)."""
    import orjson

    total = 0
    for line in log.read_text().splitlines():
        if '"timer partitions loaded"' in line:
            try:
                total = int(orjson.loads(line).get("records", 0))
            except orjson.JSONDecodeError:
                continue
    return total


def report(r: dict[str, Any]) -> str:
    base = r["baseline"]["round_trip_seconds"]
    mem, fire, rec, sched = r["memory"], r["firing"], r["recovery"], r["schedule"]
    raw_rate = r["raw_timers_read"]["records_per_s"]
    late, e2e = fire["lateness_seconds"], fire["end_to_end_lateness_seconds"]
    mib = 2**20
    rows = [
        ("kafka round trip (floor)", f"p50 {base['p50'] * 1000:.2f} ms  p99 {base['p99'] * 1000:.2f} ms  "
                                     f"{r['baseline']['throughput_msgs_per_s']:.0f} msg/s"),
        ("pending timers", f"{mem['pending']:,}"),
        ("RSS with all pending", f"{mem['rss_bytes'] / mib:.0f} MiB (peak {mem['rss_peak_bytes'] / mib:.0f} MiB; "
                                 f"idle {r['rss_idle_bytes'] / mib:.0f} MiB)"),
        ("memory per pending timer", f"{mem['bytes_per_timer']:.0f} B whole process; "
                                     f"{r['index_bytes_per_timer_tracemalloc']:.0f} B index alone"),
        ("schedule rate", f"{sched['producer_timers_per_s']:,.0f}/s produced (acks=all); "
                          f"{sched['indexed_timers_per_s']:,.0f}/s indexed by the scheduler"),
        (f"fire lateness @ {r['settings']['rate']:g}/s due",
         f"p50 {late['p50'] * 1000:.1f} ms  p99 {late['p99'] * 1000:.1f} ms  max {late['max'] * 1000:.1f} ms"),
        ("  end to end (via Kafka)", f"p50 {e2e['p50'] * 1000:.1f} ms ({e2e['p50'] / base['p50']:.1f}x floor)  "
                                     f"p99 {e2e['p99'] * 1000:.1f} ms ({e2e['p99'] / base['p99']:.1f}x floor)"),
        ("  fired / due", f"{fire['fired']}/{fire['due']}, twice {fire['fired_more_than_once']}, "
                          f"early {fire['fired_early']}"),
        ("recovery: load (assign→loaded)", f"{rec['load_seconds']:.1f} s for {rec['records_loaded']:,} records "
                                           f"({(rec['records_per_s'] or 0):,.0f}/s; raw read {raw_rate:,.0f}/s = "
                                           f"{(rec['records_per_s'] or 0) / raw_rate:.2f}x)"),
        ("recovery: restart→ready", f"{rec['restart_to_ready_seconds']:.1f} s " + (
            "(static membership: partitions come back at once)" if r["settings"]["static_membership"] else
            "(includes the group dropping the killed member: session timeout)")),
        ("  RSS after recovery", f"{rec['rss_bytes'] / mib:.0f} MiB (peak {rec['rss_peak_bytes'] / mib:.0f} MiB)"),
        ("  due while down, fired", f"{rec['overdue_fired']}/{rec['overdue_while_down']}; pending "
                                    f"{rec['pending_before_kill']:,} → {rec['pending_after']:,}"),
    ]
    return table(rows, f"Scheduler benchmark — {r['settings']['timers']:,} timers, one process")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scheduler_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--timers", type=int, default=1_000_000, help="pending timers to load (default 1,000,000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="timers coming due per second while measuring")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of timers coming due at --rate")
    parser.add_argument("--round-trips", type=int, default=500, help="raw Kafka round trips for the floor")
    parser.add_argument("--dynamic", dest="static", action="store_false",
                        help="no SWITCHBOARD_SCHEDULER_INSTANCE_ID: the restart waits for the group to drop the "
                             "killed member (session timeout) before it gets partitions")
    args = parser.parse_args(argv)
    if args.rate * args.window >= args.timers:
        parser.error("--timers must exceed --rate × --window")
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-scheduler-"))
    try:
        results = asyncio.run(run(args, workdir))
    finally:
        if not os.environ.get("SWITCHBOARD_KEEP_BENCH_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))
    path = write_result("scheduler", results)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
