"""``make bench-state-processor``: what one processor keeps in memory and how fast it is back. Not a test.

What it does, on its own Kafka broker (started here, stopped by PID), with one processor process:

1. the raw Kafka floor (``bench.kafka_baseline``): produce→consume round trip and throughput;
2. publishes two flows straight to the ``flows`` topic: one that ends at once (Trigger → Set Variables →
   Split → Set Variables) and one that waits (Trigger → Send & Wait For Reply, 1 h timeout);
3. starts ``python -m services.processor`` (static membership, its own data folder) and notes its idle RSS;
4. **ended**: writes ``--ended`` StartExecution events straight to the ``events`` topic, each to a new
   contact, in ``--steps`` equal chunks; after each chunk is handled, reads RSS. The figure is the slope of
   RSS over executions (least squares), in KB per ended execution. Then counts the route rows still live
   in the ``routes`` changelog (a key whose last record is not a tombstone);
5. SIGKILLs the processor, restarts it and measures restart → ``/readyz`` 200, and RSS after;
6. **active**: writes ``--active`` StartExecution events for the waiting flow (each to a new contact; no
   http-worker runs, so every execution stays active waiting for its message to be sent), reading RSS per
   chunk and the handling rate;
7. SIGKILLs and restarts it again with every execution active: restart → ready, RSS after, data folder size.

``--store memory`` runs the same against the in-memory store; ``--root DIR`` runs the processor from
another source tree (e.g. an export of an earlier commit) for a before/after comparison.
Results: ``bench/results/<date>-processor-state.json`` and a printed table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

if __package__ in (None, ""):  # ``python bench/processor_state.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write_result
from bench.kafka_baseline import measure_baseline
from devtools.kafka_broker import KafkaBroker, free_port
from shared.flow_catalog import flow_key
from shared.ids import new_sid
from shared.messages import EndRequested, FlowRecord, StartExecution, encode
from shared.settings import Settings
from shared.topics import changelog_topics, create_topics

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "+15559990000"

ENDS_AT_ONCE = {
    "initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
    "states": [
        {"name": "Trigger", "type": "trigger", "properties": {},
         "transitions": [{"event": "incomingRequest", "next": "prepare"}]},
        {"name": "prepare", "type": "set-variables",
         "properties": {"variables": [{"key": "who", "value": "{{contact.channel.address}}"}]},
         "transitions": [{"event": "next", "next": "branch"}]},
        {"name": "branch", "type": "split-based-on", "properties": {"input": "{{flow.variables.who}}"},
         "transitions": [{"event": "noMatch", "next": "done"},
                         {"event": "match", "next": "done", "conditions": [
                             {"friendly_name": "x", "arguments": ["{{flow.variables.who}}"], "type": "equal_to",
                              "value": "nobody"}]}]},
        {"name": "done", "type": "set-variables", "properties": {"variables": [{"key": "result", "value": "ok"}]},
         "transitions": [{"event": "next"}]},
    ],
}
WAITS = {
    "initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
    "states": [
        {"name": "Trigger", "type": "trigger", "properties": {},
         "transitions": [{"event": "incomingRequest", "next": "ask"}]},
        {"name": "ask", "type": "send-and-wait-for-reply",
         "properties": {"body": "Reply YES to confirm {{flow.data.ref}}", "from": CHANNEL, "timeout": "3600"},
         "transitions": [{"event": "incomingMessage"}, {"event": "timeout"}, {"event": "deliveryFailure"}]},
    ],
}


def _status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


def _slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of RSS (bytes) over executions, bytes per execution."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else float("nan")


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


class Processor:
    def __init__(self, env: dict[str, str], log: Path, root: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "SWITCHBOARD_PROCESSOR_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.log, self.root = log, root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        env = {**self.env, "PYTHONPATH": str(self.root), "SWITCHBOARD_WORKER_ID": f"bench-{time.time_ns()}"}
        self.proc = subprocess.Popen([sys.executable, "-m", "services.processor"], cwd=self.root, env=env,
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
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    async def handled(self, kind: str = "start") -> float:
        """Events of ``kind`` the processor has handled (its own counter; -1 if it does not answer)."""
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{self.port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
                text = await r.text()
        except (TimeoutError, aiohttp.ClientError):
            return -1.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith("switchboard_processor_events_total{") and f'kind="{kind}"' in line \
                    and 'result="handled"' in line:
                total += float(line.rpartition(" ")[2])
        return total

    async def wait_handled(self, count: int, timeout: float = 3600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"processor exited; see {self.log}")
            if await self.handled() >= count:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the processor did not handle {count} starts; see {self.log}")

    async def wait_ready(self, timeout: float = 900) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"processor exited; see {self.log}")
            try:
                async with aiohttp.ClientSession() as session, session.get(
                        f"http://127.0.0.1:{self.port}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"processor not ready within {timeout}s; see {self.log}")


async def _publish_flow(producer: AIOKafkaProducer, settings: Settings, definition: dict[str, Any]) -> str:
    sid = new_sid("FW")
    now = time.time()
    record = FlowRecord(sid=sid, revision=1, friendly_name="bench", status="published", definition=definition,
                        commit_message="", valid=True, errors=[], warnings=[], date_created=now, date_updated=now)
    await producer.send_and_wait(settings.topic("flows"), encode(record), key=flow_key(sid, 1))
    return sid


async def _starts(producer: AIOKafkaProducer, settings: Settings, flow_sid: str, first: int, count: int) -> float:
    """Write ``count`` StartExecution events, contacts ``first``…; return events per second (acks=all)."""
    topic = settings.topic("events")
    started = time.perf_counter()
    pending = []
    for n in range(first, first + count):
        contact = f"+1{n:010d}"
        route = f"{flow_sid}:{contact}"
        event = StartExecution(execution_sid=new_sid("FN"), flow_sid=flow_sid, revision=1, route=route,
                               contact_address=contact, channel_address=CHANNEL, flow_data={"ref": n},
                               created_at=time.time(), initiated_by=new_sid("RQ"))
        pending.append(await producer.send(topic, encode(event), key=route.encode()))
        if len(pending) >= 20000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return count / (time.perf_counter() - started)


async def _nudge(producer: AIOKafkaProducer, settings: Settings) -> None:
    """One event per partition (ending an execution nobody has), so every partition's agent sweeps once more."""
    topic = settings.topic("events")
    route = f"{new_sid('FW')}:+10000000000"
    for partition in range(settings.event_partitions):
        event = EndRequested(new_sid("FN"), route, time.time())
        await producer.send_and_wait(topic, encode(event), key=route.encode(), partition=partition)


async def _live_rows(settings: Settings) -> dict[str, int]:
    """Read the routes changelog: records, and keys whose last record is a value (rows still stored)."""
    topic = changelog_topics(settings)[0]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.event_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        last: dict[bytes, bool] = {}
        records = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            for batch in batches.values():
                for record in batch:
                    records += 1
                    last[record.key] = record.value is not None
        return {"changelog_records": records, "live_rows": sum(last.values())}
    finally:
        await consumer.stop()


async def _load(processor: Processor, producer: AIOKafkaProducer, settings: Settings, flow_sid: str,
                first: int, total: int, steps: int, handled_before: int) -> dict[str, Any]:
    """Write ``total`` starts in ``steps`` chunks; RSS after each chunk is handled."""
    points: list[tuple[int, int]] = [(0, _status(processor.pid)["VmRSS"])]
    chunk = total // steps
    produce_rates, handle_seconds = [], 0.0
    done = 0
    for _ in range(steps):
        produce_rates.append(await _starts(producer, settings, flow_sid, first + done, chunk))
        done += chunk
        handle_seconds += await processor.wait_handled(handled_before + done)
        await asyncio.sleep(3)  # commits (1 s) and the sweeps that follow them
        points.append((done, _status(processor.pid)["VmRSS"]))
        print(f"  {done:,} handled, RSS {points[-1][1] / 2**20:.0f} MiB", flush=True)
    # RocksDB's memtables and block cache (bounded, per partition) fill during the first chunks: the slope over
    # the second half is the steady state.
    return {"executions": done, "rss_points": points, "slope_bytes_per_execution": _slope(points),
            "slope_second_half_bytes_per_execution": _slope(points[len(points) // 2:]),
            "rss_bytes": points[-1][1], "rss_peak_bytes": _status(processor.pid)["VmHWM"],
            "producer_events_per_s": min(produce_rates), "handled_per_s": done / handle_seconds}


async def _restart(processor: Processor) -> dict[str, Any]:
    processor.kill()
    processor.start()
    ready = await processor.wait_ready()
    await asyncio.sleep(5)  # settle: the local-rows scan, the first commits
    status = _status(processor.pid)
    return {"restart_to_ready_seconds": ready, "rss_bytes": status["VmRSS"], "rss_peak_bytes": status["VmHWM"]}


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    broker = KafkaBroker(workdir / "kafka", free_port(), free_port(), heap="1g")
    broker.start()
    processor: Processor | None = None
    try:
        env = {"SWITCHBOARD_KAFKA_BOOTSTRAP": broker.bootstrap, "SWITCHBOARD_TOPIC_PREFIX": "bench.",
               "SWITCHBOARD_LOG_JSON": "true", "SWITCHBOARD_LOG_LEVEL": "WARNING",
               "SWITCHBOARD_PROCESSOR_STORE": args.store,
               "SWITCHBOARD_PROCESSOR_DATA_DIR": str(workdir / "data"),
               "SWITCHBOARD_PROCESSOR_INSTANCE_ID": "bench-processor-0"}
        settings = Settings.from_env(env)
        create_topics(settings)
        out: dict[str, Any] = {"settings": {"ended": args.ended, "active": args.active, "steps": args.steps,
                                            "store": args.store, "root": str(args.root),
                                            "partitions": settings.event_partitions, "static_membership": True}}
        print("measuring the raw Kafka floor…", flush=True)
        out["baseline"] = await measure_baseline(broker.bootstrap, round_trips=args.round_trips)

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        try:
            ends_flow = await _publish_flow(producer, settings, ENDS_AT_ONCE)
            waits_flow = await _publish_flow(producer, settings, WAITS)
            processor = Processor(env, workdir / "processor.log", args.root)
            processor.start()
            out["first_ready_seconds"] = await processor.wait_ready()
            await asyncio.sleep(3)
            out["rss_idle_bytes"] = _status(processor.pid)["VmRSS"]

            if args.ended:
                print(f"ended: {args.ended:,} executions, each to a new contact…", flush=True)
                out["ended"] = await _load(processor, producer, settings, ends_flow, 0, args.ended, args.steps, 0)
                await _nudge(producer, settings)
                await asyncio.sleep(3)
                out["ended"].update(await _live_rows(settings))
                print("  restarting (SIGKILL)…", flush=True)
                out["ended"]["restart"] = await _restart(processor)
            handled = int(await processor.handled())
            if args.active:
                print(f"active: {args.active:,} executions waiting for a reply…", flush=True)
                out["active"] = await _load(processor, producer, settings, waits_flow, 10**9, args.active,
                                            args.steps, handled)
                print("  restarting (SIGKILL)…", flush=True)
                out["active"]["restart"] = await _restart(processor)
                out["active"]["data_dir_bytes"] = _du(workdir / "data")
        finally:
            await producer.stop()
        return out
    finally:
        if processor is not None:
            processor.stop()
        broker.stop()


def report(r: dict[str, Any]) -> str:
    base = r["baseline"]["round_trip_seconds"]
    mib = 2**20
    rows = [
        ("kafka round trip (floor)", f"p50 {base['p50'] * 1000:.2f} ms  p99 {base['p99'] * 1000:.2f} ms  "
                                     f"{r['baseline']['throughput_msgs_per_s']:.0f} msg/s"),
        ("store", f"{r['settings']['store']}://, {r['settings']['partitions']} partitions, one process"),
        ("RSS idle", f"{r['rss_idle_bytes'] / mib:.0f} MiB (first start → ready {r['first_ready_seconds']:.1f} s)"),
    ]
    if "ended" in r:
        e = r["ended"]
        rows += [
            (f"ended: {e['executions']:,} executions",
             f"slope {e['slope_bytes_per_execution'] / 1024:.3f} KB/execution "
             f"(second half {e['slope_second_half_bytes_per_execution'] / 1024:.3f}); "
             f"RSS {e['rss_bytes'] / mib:.0f} MiB (peak {e['rss_peak_bytes'] / mib:.0f})"),
            ("  handled", f"{e['handled_per_s']:,.0f} executions/s"),
            ("  route rows left", f"{e['live_rows']:,} live of {e['changelog_records']:,} changelog records"),
            ("  restart → ready", f"{e['restart']['restart_to_ready_seconds']:.1f} s; RSS after "
                                  f"{e['restart']['rss_bytes'] / mib:.0f} MiB"),
        ]
    if "active" in r:
        a = r["active"]
        rows += [
            (f"active: {a['executions']:,} waiting",
             f"RSS {a['rss_bytes'] / mib:.0f} MiB (peak {a['rss_peak_bytes'] / mib:.0f}); "
             f"slope {a['slope_bytes_per_execution'] / 1024:.3f} KB/execution "
             f"(second half {a['slope_second_half_bytes_per_execution'] / 1024:.3f})"),
            ("  handled", f"{a['handled_per_s']:,.0f} executions/s"),
            ("  restart → ready", f"{a['restart']['restart_to_ready_seconds']:.1f} s; RSS after "
                                  f"{a['restart']['rss_bytes'] / mib:.0f} MiB (peak {a['restart']['rss_peak_bytes'] / mib:.0f})"),
            ("  data folder", f"{a['data_dir_bytes'] / mib:.0f} MiB"),
        ]
    return table(rows, "Processor state benchmark")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="processor_state", description=__doc__.split("\n")[0])
    parser.add_argument("--ended", type=int, default=100_000, help="executions that end (default 100,000)")
    parser.add_argument("--active", type=int, default=200_000, help="executions left waiting (default 200,000)")
    parser.add_argument("--steps", type=int, default=5, help="RSS readings per phase")
    parser.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to run the processor from")
    parser.add_argument("--round-trips", type=int, default=500, help="raw Kafka round trips for the floor")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-processor-"))
    try:
        results = asyncio.run(run(args, workdir))
    finally:
        if not os.environ.get("SWITCHBOARD_KEEP_BENCH_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))
    path = write_result("processor-state", results)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
