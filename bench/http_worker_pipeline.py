"""The http-worker as it runs: HttpRequest commands from Kafka, the HTTP call, HttpResult events to Kafka.

``python -m bench.http_worker_pipeline`` starts a broker, one http-worker process and the HTTP stub, then:

* **throughput**: publishes a burst of requests at once and measures how many results per second one
  worker process delivers (consume + policy + HTTP + produce with acks=all + commit), with the worker's
  CPU per request;
* **latency** at a moderate open-loop rate: command produced → result consumed, next to the raw Kafka
  round trip measured in the same run. The pipeline has two Kafka hops (command, result), so
  ``p50 - 2 x round trip p50`` bounds the worker's own share (HTTP call included).

``bench.http_worker_overhead`` isolates ``perform()`` against a direct aiohttp call; this one includes
Kafka. Nothing is asserted; results go to ``bench/results/<date>-http-worker-pipeline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.common import summarize, table, write_result
from bench.cpu import cpu_seconds
from bench.kafka_baseline import measure_baseline
from bench.load import open_loop
from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from shared.kafka import make_producer, read_all_partitions
from shared.messages import HttpRequest, HttpResult, decode, encode
from shared.settings import Settings


def _request(url: str, run: str, n: int) -> HttpRequest:
    sid = f"FN{run}{n:024d}"
    return HttpRequest(request_id=f"RQ{run}{n:024d}", execution_sid=sid, route=f"FWbench:+1555{n:07d}", token="t",
                       purpose="http", method="GET", url=url, content_type="application/x-www-form-urlencoded",
                       body=None, form=[], query=[["n", str(n)]], twilio_auth=False, accept_3xx=False,
                       created_at=time.time())


class Results:
    """Reads the events topic and notes when each of our results arrives."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.arrived: dict[str, float] = {}
        self.failed = 0
        self._changed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                          enable_auto_commit=False, fetch_max_wait_ms=100, max_poll_records=5000)
        await self._consumer.start()
        tps = await read_all_partitions(self._consumer, self.settings.topic("events"))
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)

    async def run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    message = decode(record.value) if record.value else None
                    if isinstance(message, HttpResult):
                        self.arrived.setdefault(message.request_id, now)
                        self.failed += 0 if message.ok else 1
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while len(self.arrived) < count and time.perf_counter() < deadline:
            try:
                await asyncio.wait_for(self._changed.wait(), 1.0)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def measure(cluster: Cluster, stub_url: str, burst: int, rate: float, seconds: float) -> dict[str, Any]:
    settings = Settings.from_env(cluster.env)
    worker_pid = cluster.processes["http_worker"].pid
    out: dict[str, Any] = {"baseline": await measure_baseline(settings.kafka_bootstrap, round_trips=300, burst=5000)}
    producer = make_producer(settings, "bench-http-pipeline")
    results = Results(settings)
    await producer.start()
    await results.start()
    reader = asyncio.create_task(results.run())
    topic = settings.topic("http-requests")
    try:
        async def publish(request: HttpRequest) -> Any:
            return await producer.send(topic, encode(request), key=request.execution_sid.encode())

        # Warm-up: connections, caches, the worker's group assignment.
        warm = [_request(stub_url, "w" + uuid.uuid4().hex[:7], n) for n in range(200)]
        await asyncio.gather(*[await publish(r) for r in warm])
        await results.wait_for(len(warm), 60)

        # Throughput: one burst, as fast as the producer takes it.
        run = uuid.uuid4().hex[:8]
        requests = [_request(stub_url, run, n) for n in range(burst)]
        cpu_before, started = cpu_seconds([worker_pid]), time.perf_counter()
        await asyncio.gather(*[await publish(r) for r in requests])
        await results.wait_for(len(warm) + burst, 120)
        ours = [results.arrived[r.request_id] for r in requests if r.request_id in results.arrived]
        elapsed = (max(ours) - started) if ours else float("nan")
        cpu = cpu_seconds([worker_pid]) - cpu_before
        out["throughput"] = {"requests": burst, "results": len(ours), "seconds": elapsed,
                             "results_per_s": len(ours) / elapsed if ours else 0.0,
                             "worker_cpu_ms_per_request": cpu * 1000 / max(len(ours), 1),
                             "failed_results": results.failed}

        # Latency at a moderate open-loop rate.
        run = uuid.uuid4().hex[:8]
        sent: dict[str, float] = {}

        async def one(n: int) -> str | None:
            request = _request(stub_url, run, n)
            sent[request.request_id] = time.perf_counter()
            await (await publish(request))
            return None

        load = await open_loop(rate, seconds, one)
        await results.wait_for(len(warm) + burst + len(sent), 30)
        latencies = [results.arrived[k] - t for k, t in sent.items() if k in results.arrived]
        out["latency"] = {"rate": rate, "sent": len(sent), "results": len(latencies), "generator_behind": load.behind,
                          "generator_errors": load.errors, "seconds": summarize(latencies)}
    finally:
        reader.cancel()
        await producer.stop()
        await results.stop()
    return out


def report(out: dict[str, Any]) -> str:
    base = out["baseline"]["round_trip_seconds"]["p50"]
    t, lat = out["throughput"], out["latency"]["seconds"]
    own = lat["p50"] - 2 * base
    rows = [
        ("kafka round trip", f"p50 {base * 1000:.2f} ms  p99 {out['baseline']['round_trip_seconds']['p99'] * 1000:.2f} ms"),
        ("one worker process, burst", f"{t['results_per_s']:.0f} results/s ({t['results']}/{t['requests']} in "
                                      f"{t['seconds']:.1f} s), {t['worker_cpu_ms_per_request']:.2f} ms CPU/request"),
        (f"command -> result @ {out['latency']['rate']:g}/s", f"p50 {lat['p50'] * 1000:.1f} ms ({lat['p50'] / base:.1f}x), "
                                                             f"p99 {lat['p99'] * 1000:.1f} ms ({lat['p99'] / base:.1f}x)"),
        ("  minus two Kafka hops (p50)", f"{own * 1000:.2f} ms: the worker's share, HTTP call included"),
    ]
    return table(rows, "http-worker pipeline: Kafka in, HTTP, Kafka out (one process, 127.0.0.1 stub)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http_worker_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=20000, help="requests published at once (throughput)")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop rate of the latency phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency phase")
    args = parser.parse_args(argv)
    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_server", str(stub_port)])
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-worker-"))
    cluster = Cluster.local(workdir, SWITCHBOARD_LOG_LEVEL="WARNING")
    try:
        cluster.start_kafka()
        cluster.start_service("http_worker")
        cluster.wait_ready("http_worker")
        out = asyncio.run(measure(cluster, f"http://127.0.0.1:{stub_port}/x", args.burst, args.rate, args.seconds))
    finally:
        cluster.stop()
        stub.terminate()
        stub.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(out))
    print(f"\nresults: {write_result('http-worker-pipeline', {'settings': vars(args), **out})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
