"""``make bench`` / ``make bench-quick``: start a cluster on this machine, measure, write bench/results/*.json.

Every run first measures the raw Kafka produce→consume round trip (the floor) and reports the engine's
latencies as ratios to it, because absolute times drift between runs on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.common import table, write_result
from bench.cpu import cpu_seconds
from bench.executions import run_executions
from bench.flows import six_widget_flow, voice_flow
from bench.ideal_pipeline import WARMUP_RATE, WARMUP_SECONDS, measure_ideal
from bench.kafka_baseline import measure_baseline
from bench.kafka_count import messages_written
from bench.webhook import run_webhooks
from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from shared.settings import Settings


async def _create_flow(base: str, auth: dict[str, str], definition: dict[str, Any]) -> str:
    async with aiohttp.ClientSession(headers=auth) as session:
        data = {"FriendlyName": "bench", "Status": "published", "Definition": orjson.dumps(definition).decode()}
        async with session.post(f"{base}/v2/Flows", data=data) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"flow import failed: {body}")
            return str(body["sid"])


def _fmt(d: dict[str, float], base: float) -> str:
    return (f"p50 {d['p50'] * 1000:.1f} ms ({d['p50'] / base:.1f}x)  p99 {d['p99'] * 1000:.1f} ms "
            f"({d['p99'] / base:.1f}x)")


async def _measure(cluster: Cluster, args: argparse.Namespace, stub_url: str, label: str,
                   stub_pid: int) -> dict[str, Any]:
    s = Settings.from_env(cluster.env)
    auth = {"Authorization": aiohttp.encode_basic_auth(s.account_sid, s.auth_token)}
    base = cluster.ingress_url
    pids = {name: p.pid for name, p in cluster.processes.items()}
    if cluster.broker is not None and cluster.broker.pid_file.exists():
        pids["kafka"] = int(cluster.broker.pid_file.read_text())
    # The load generator (this process, incl. its history follower) and the HTTP stub share the two cores.
    outside = {"load": os.getpid(), "stub": stub_pid}
    out: dict[str, Any] = {"baseline": await measure_baseline(s.kafka_bootstrap, round_trips=args.round_trips)}
    flow = await _create_flow(base, auth, six_widget_flow(stub_url))
    out["executions"] = []
    # Warm-up, not recorded (the ideal pipeline gets the same): a fresh broker's JVM compiles its hot paths
    # during the first seconds of load, which made a fresh run's broker CPU per execution look 1.5x higher.
    await run_executions(base, auth, flow, s.kafka_bootstrap, s.topic("history"), WARMUP_RATE, WARMUP_SECONDS)
    await asyncio.sleep(3)
    for rate in args.rates:
        before = await messages_written(s.kafka_bootstrap)
        result = await run_executions(base, auth, flow, s.kafka_bootstrap, s.topic("history"), rate,
                                      args.duration, cpu=lambda: {n: cpu_seconds([p]) for n, p in pids.items()},
                                      cpu_outside=lambda: {n: cpu_seconds([p]) for n, p in outside.items()})
        after = await messages_written(s.kafka_bootstrap)
        written = {t: after[t] - before.get(t, 0) for t in after if after[t] - before.get(t, 0) > 0}
        if result["completed"]:
            # Every message of the run over the executions it completed (a backlog left behind counts too).
            result["kafka_messages_per_execution"] = round(sum(written.values()) / result["completed"], 2)
            result["kafka_messages_by_topic"] = written
        out["executions"].append(result)
    if not args.skip_webhooks:
        await asyncio.sleep(5)  # let the execution backlog drain before timing webhooks
        out["webhooks"] = []
        for with_http in (False, True):
            vflow = await _create_flow(base, auth, voice_flow(stub_url if with_http else None))
            for rate in args.webhook_rates:
                result = await run_webhooks(base, s.public_base_url, s.account_sid, s.auth_token, vflow, rate,
                                            args.webhook_duration)
                result["with_http_request"] = with_http
                out["webhooks"].append(result)
    for rate in args.saturation_rates:
        # Last, because an overload leaves a backlog behind: how the engine behaves past its limit.
        result = await run_executions(base, auth, flow, s.kafka_bootstrap, s.topic("history"), rate,
                                      args.saturation_duration, cpu=lambda: {n: cpu_seconds([p]) for n, p in pids.items()},
                                      cpu_outside=lambda: {n: cpu_seconds([p]) for n, p in outside.items()})
        result["saturation"] = True
        out["executions"].append(result)
        await asyncio.sleep(10)  # what a step left behind drains before the next one starts
    out["label"] = label
    return out


def _report(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    base = results["baseline"]["round_trip_seconds"]["p50"]
    rows.append(("kafka round trip", f"p50 {base * 1000:.2f} ms  p99 "
                 f"{results['baseline']['round_trip_seconds']['p99'] * 1000:.2f} ms  "
                 f"{results['baseline']['throughput_msgs_per_s']:.0f} msg/s"))
    for e in results["executions"]:
        tag = " (overload)" if e.get("saturation") else ""
        rows.append((f"executions @ {e['target_rate']:g}/s{tag}", f"{e['completed_per_s']:.0f}/s completed, "
                     f"{e['completed']}/{e['sent']} ended, errors {e['errors'] or 0}, "
                     f"e2e {_fmt(e['end_to_end_seconds'], base)}, "
                     f"cpu {e['cpu_seconds_per_execution'] * 1000:.2f} ms/exec"))
        rows.append(("  cpu ms/exec by process", ", ".join(f"{k} {v:.2f}" for k, v in
                                                          e.get("cpu_ms_per_execution_by_process", {}).items())))
        if e.get("cpu_ms_per_execution_outside_engine"):
            rows.append(("  not the engine", ", ".join(f"{k} {v:.2f}" for k, v in
                                                     e["cpu_ms_per_execution_outside_engine"].items())))
        if "kafka_messages_per_execution" in e:
            rows.append(("  kafka messages/exec", f"{e['kafka_messages_per_execution']:.1f}"))
    capacity = max((e["completed_per_s"] for e in results["executions"] if e["completed_per_s"] == e["completed_per_s"]),
                   default=0.0)
    rows.append(("capacity (most completed/s of any run)", f"{capacity:.0f}/s"))
    ideal = results.get("ideal")
    if ideal:
        for e, i in zip(results["executions"], ideal["executions"], strict=False):
            rows.append((f"ideal pipeline @ {i['target_rate']:g}/s",
                         f"{i['completed_per_s']:.0f}/s at {i['cpu_seconds_per_execution'] * 1000:.2f} ms CPU/exec; "
                         f"Switchboard/ideal: throughput {e['completed_per_s'] / i['completed_per_s']:.2f}, "
                         f"CPU per execution {e['cpu_seconds_per_execution'] / i['cpu_seconds_per_execution']:.1f}x"))
    for w in results.get("webhooks", []):
        rows.append((f"webhook{' +http' if w['with_http_request'] else ''} @ {w['target_rate']:g}/s",
                     f"{_fmt(w['latency_seconds'], base)} p99.9 {w['latency_seconds']['p999'] * 1000:.1f} ms, "
                     f"ok {w['ok']}/{w['sent']}, errors {w['errors'] or 0}"))
    return table(rows, f"Switchboard benchmark — {results['label']}")


def _service_settings(cluster: Cluster) -> dict[str, Any]:
    """The settings the services ran with that change the figures (linger, budgets, partitions)."""
    s = Settings.from_env(cluster.env)
    return {"processor_linger_ms": s.processor_linger_ms, "event_partitions": s.event_partitions,
            "reply_partitions": s.reply_partitions, "webhook_reply_budget_seconds": s.webhook_reply_budget_seconds,
            "log_level": cluster.env.get("SWITCHBOARD_LOG_LEVEL", "INFO")}


def _cluster(workdir: Path) -> Cluster:
    return Cluster.local(workdir, SWITCHBOARD_LOG_LEVEL="WARNING", SWITCHBOARD_WEBHOOK_REPLY_BUDGET_SECONDS="8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--quick", action="store_true", help="short runs (< 3 minutes in all)")
    parser.add_argument("--scaling", action="store_true",
                        help="also run a fresh cluster with 2 processors and 2 http-workers")
    parser.add_argument("--skip-webhooks", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.duration, args.round_trips = [1000.0], 20.0, 200
        args.webhook_rates, args.webhook_duration = [50.0, 200.0], 10.0
        args.saturation_rates, args.saturation_duration = [], 0.0
    else:
        args.rates, args.duration, args.round_trips = [100.0, 200.0], 60.0, 1000
        args.webhook_rates, args.webhook_duration = [50.0, 200.0, 500.0], 30.0
        # A sweep to saturation: the capacity is the most completed per second any step reached.
        args.saturation_rates, args.saturation_duration = [250.0, 500.0, 750.0, 1000.0, 1500.0], 15.0
    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_server", str(stub_port)])
    stub_url = f"http://127.0.0.1:{stub_port}"
    # A copy: the scaled run below changes args, and the file must say what the single run used.
    all_results: dict[str, Any] = {"settings": dict(vars(args))}
    try:
        runs = [("single", "1 processor, 1 http-worker", 1)]
        if args.scaling:
            runs.append(("scaled", "2 processors, 2 http-workers", 2))
        for key, label, replicas in runs:
            workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
            cluster = _cluster(workdir)
            try:
                cluster.start()
                for n in range(2, replicas + 1):
                    ports = {"SWITCHBOARD_PROCESSOR_PORT": str(free_port()),
                             "SWITCHBOARD_HTTP_WORKER_PORT": str(free_port())}
                    cluster.start_service("processor", label=f"processor-{n}", extra_env=ports)
                    cluster.start_service("http_worker", label=f"http_worker-{n}", extra_env=ports)
                if replicas > 1:
                    time.sleep(15)  # let the groups rebalance
                    args.skip_webhooks, args.saturation_rates = True, []
                results = asyncio.run(_measure(cluster, args, stub_url, label, stub.pid))
                if key == "single":
                    cluster.stop()  # the ceiling is measured alone, on its own broker, right after
                    results["ideal"] = asyncio.run(measure_ideal(stub_url, args.rates, args.duration))
                results["run_settings"] = {k: v for k, v in vars(args).items() if k != "quick"}
                results["service_settings"] = _service_settings(cluster)
                print(_report(results))
                all_results[key] = results
            finally:
                cluster.stop()
                if not os.environ.get("SWITCHBOARD_KEEP_BENCH_DIR"):
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        stub.terminate()
        stub.wait()
    path = write_result("quick" if args.quick else "full", all_results)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
