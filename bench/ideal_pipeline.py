"""The ideal pipeline: an execution's Kafka hops with no engine logic — the ceiling of this machine.

Three processes, as in Switchboard, on a broker of their own:

* **front** (aiohttp): ``POST /v2/Flows/{sid}/Executions`` → a start event on ``events``; answers 201 when the
  processor's reply arrives on ``replies`` (the REST create's request/reply);
* **processor** (aiokafka, one poll = one batch): a start → a reply and an HTTP request on ``http-requests``;
  a result → the ended execution on ``history`` (the same ``HistoryBatch`` the engine writes); offsets are
  committed after the batch's sends are acknowledged (at least once, like the engine);
* **worker** (aiokafka + aiohttp client): each request → ``GET`` on the HTTP stub → a result on ``events``.

Same hops, same client library, acks=all and idempotent producers, batched as well as a poll loop allows and
nothing else: no state, no Liquid, no flow. ``bench.executions.run_executions`` drives it exactly as it drives
the engine, so the two figures compare. ``python -m bench.ideal_pipeline --rate 1000 --seconds 20``.
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
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write_result
from bench.cpu import cpu_seconds
from bench.executions import run_executions
from bench.kafka_baseline import measure_baseline
from devtools.kafka_broker import KafkaBroker, free_port
from shared.messages import HistoryBatch, encode

__all__ = ["WARMUP_RATE", "WARMUP_SECONDS", "measure_ideal"]

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
#: Both the engine and the ideal pipeline get the same unrecorded warm-up before they are measured.
WARMUP_RATE, WARMUP_SECONDS = 200.0, 10.0


def _producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=linger_ms,
                            max_batch_size=256 * 1024)


def _consumer(bootstrap: str, group: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="latest", fetch_max_wait_ms=5, max_poll_records=5000)


async def _front(bootstrap: str, port: int) -> None:
    producer = _producer(bootstrap, 1)
    replies = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                               fetch_max_wait_ms=500)
    await producer.start()
    await replies.start()
    tp = TopicPartition("ideal.replies", 0)
    replies.assign([tp])
    await replies.seek_to_end(tp)
    waiting: dict[str, asyncio.Future[None]] = {}

    async def read_replies() -> None:
        while True:
            for records in (await replies.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    future = waiting.pop(record.key.decode(), None) if record.key else None
                    if future is not None and not future.done():
                        future.set_result(None)

    async def create(request: web.Request) -> web.Response:
        await request.post()
        sid = "FN" + uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        waiting[sid] = future
        await producer.send("ideal.events", orjson.dumps({"k": "start", "sid": sid}), key=sid.encode())
        await asyncio.wait_for(future, 10)
        return web.json_response({"sid": sid, "status": "active"}, status=201)

    reader = asyncio.create_task(read_replies())
    app = web.Application()
    app.router.add_post("/v2/Flows/{flow}/Executions", create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        reader.cancel()
        await runner.cleanup()


async def _processor(bootstrap: str) -> None:
    producer = _producer(bootstrap, 5)
    replies = _producer(bootstrap, 0)  # replies do not wait for the batch linger, as in the engine
    consumer = _consumer(bootstrap, "ideal-processor", "ideal.events")
    for client in (producer, replies, consumer):
        await client.start()
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=5000)
        sends = []
        for records in batches.values():
            for record in records:
                event = orjson.loads(record.value)
                sid = event["sid"]
                if event["k"] == "start":
                    sends.append(await replies.send("ideal.replies", b"ok", key=sid.encode(), partition=0))
                    sends.append(await producer.send("ideal.http-requests", orjson.dumps({"sid": sid}),
                                                     key=sid.encode()))
                else:
                    execution = {"sid": sid, "status": "ended", "step_count": 6}
                    sends.append(await producer.send("ideal.history", encode(HistoryBatch(execution=execution)),
                                                     key=sid.encode()))
        if sends:
            await asyncio.gather(*sends)
            await consumer.commit()


async def _worker(bootstrap: str, stub: str) -> None:
    producer = _producer(bootstrap, 5)
    consumer = _consumer(bootstrap, "ideal-worker", "ideal.http-requests")
    await producer.start()
    await consumer.start()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def call(sid: str) -> Any:
            async with session.get(f"{stub}/person") as r:
                body = await r.read()
            return await producer.send("ideal.events", orjson.dumps({"k": "result", "sid": sid, "n": len(body)}),
                                       key=sid.encode())

        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            sids = [orjson.loads(r.value)["sid"] for records in batches.values() for r in records]
            if sids:
                await asyncio.gather(*await asyncio.gather(*(call(s) for s in sids)))
                await consumer.commit()


def _role(argv: list[str]) -> int:
    role, bootstrap, extra = argv[0], argv[1], argv[2] if len(argv) > 2 else ""
    runner = {"front": lambda: _front(bootstrap, int(extra)), "processor": lambda: _processor(bootstrap),
              "worker": lambda: _worker(bootstrap, extra)}[role]
    asyncio.run(runner())
    return 0


def _create_topics(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(f"ideal.{name}", PARTITIONS if name != "replies" else 1, 1)
                             for name in ("events", "http-requests", "history", "replies")])
    finally:
        admin.close()


async def measure_ideal(stub_url: str, rates: list[float], duration: float) -> dict[str, Any]:
    """Start a broker and the three roles, drive them like the engine at each rate; stop everything by PID."""
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-ideal-"))
    broker = KafkaBroker(workdir / "kafka", free_port(), free_port())
    broker.start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        _create_topics(broker.bootstrap)
        port = free_port()
        for role, extra in (("front", str(port)), ("processor", ""), ("worker", stub_url)):
            procs[role] = subprocess.Popen([sys.executable, "-m", "bench.ideal_pipeline", "--role", role,
                                            broker.bootstrap, extra], cwd=ROOT, start_new_session=True)
        await asyncio.sleep(8)  # groups join, the front listens
        pids = {name: p.pid for name, p in procs.items()}
        pids["kafka"] = int(broker.pid_file.read_text())
        out: dict[str, Any] = {"baseline": await measure_baseline(broker.bootstrap, round_trips=200, burst=10000),
                               "executions": []}
        # Warm-up, not recorded: the JVM compiles the broker's hot paths in its first seconds of load.
        await run_executions(f"http://127.0.0.1:{port}", {}, "FW-ideal", broker.bootstrap, "ideal.history",
                             WARMUP_RATE, WARMUP_SECONDS)
        for rate in rates:
            out["executions"].append(await run_executions(
                f"http://127.0.0.1:{port}", {}, "FW-ideal", broker.bootstrap, "ideal.history", rate, duration,
                cpu=lambda: {n: cpu_seconds([p]) for n, p in pids.items()}))
        out["kafka_messages_per_execution"] = 5  # start, reply, request, result, history
        return out
    finally:
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(out: dict[str, Any]) -> str:
    rows = []
    for e in out["executions"]:
        rows.append((f"ideal @ {e['target_rate']:g}/s", f"{e['completed_per_s']:.0f}/s completed "
                     f"({e['completed']}/{e['sent']}), cpu {e['cpu_seconds_per_execution'] * 1000:.2f} ms/exec: " +
                     ", ".join(f"{k} {v:.2f}" for k, v in e.get("cpu_ms_per_execution_by_process", {}).items())))
    return table(rows, "ideal pipeline")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--role"]:
        return _role(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.ideal_pipeline")
    parser.add_argument("--rate", type=float, action="append")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_server", str(stub_port)], cwd=ROOT)
    try:
        time.sleep(1)
        out = asyncio.run(measure_ideal(f"http://127.0.0.1:{stub_port}", args.rate or [1000.0], args.seconds))
    finally:
        stub.terminate()
        stub.wait()
    print(report(out))
    print(f"\nresults: {write_result('ideal-pipeline', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
