"""``make bench-state`` (whole cluster part): every service's memory after many executions through the real pipeline.

A fresh local cluster (broker and the four services) and the HTTP stub; ``--executions`` REST-started
executions of the 6-widget flow, each to a new contact, in ``--steps`` chunks at ``--rate`` per second
(open loop, below saturation so the backlog stays small). After each chunk has ended, every service's RSS is
read; the figure per service is the least-squares slope of RSS over executions (KB per ended execution).
Then each service is SIGKILLed and restarted in turn and its restart → ``/readyz`` time measured.
Results: ``bench/results/<date>-pipeline-state.json`` and a printed table. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write_result
from bench.cpu import rss_bytes
from bench.executions import run_executions
from bench.flows import six_widget_flow
from bench.history_state import slope
from bench.kafka_baseline import measure_baseline
from bench.run import _create_flow
from devtools.cluster import SERVICES, Cluster
from devtools.kafka_broker import free_port
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


async def run(cluster: Cluster, stub_url: str, args: argparse.Namespace) -> dict[str, Any]:
    s = Settings.from_env(cluster.env)
    auth = {"Authorization": aiohttp.encode_basic_auth(s.account_sid, s.auth_token)}
    out: dict[str, Any] = {"baseline": await measure_baseline(s.kafka_bootstrap, round_trips=200, burst=5000),
                           "settings": {"executions": args.executions, "rate": args.rate, "steps": args.steps}}
    flow = await _create_flow(cluster.ingress_url, auth, six_widget_flow(stub_url))
    await asyncio.sleep(3)
    idle = {name: rss_bytes(p.pid) for name, p in cluster.processes.items()}
    samples: list[dict[str, Any]] = []
    done = 0
    chunk = args.executions // args.steps
    for _ in range(args.steps):
        result = await run_executions(cluster.ingress_url, auth, flow, s.kafka_bootstrap, s.topic("history"),
                                      args.rate, chunk / args.rate)
        done += result["completed"]
        await asyncio.sleep(5)  # let tombstones, commits and sweeps settle
        rss = {name: rss_bytes(p.pid) for name, p in cluster.processes.items()}
        samples.append({"executions": done, "rss_bytes": rss, "completed_per_s": result["completed_per_s"],
                        "errors": result["errors"]})
        print(f"  {done} ended: " + ", ".join(f"{n} {v / 2**20:.0f} MiB" for n, v in rss.items()), flush=True)
    xs = [float(sample["executions"]) for sample in samples]
    out["idle_rss_bytes"] = idle
    out["samples"] = samples
    out["kb_per_execution"] = {name: slope(xs, [float(sample["rss_bytes"][name]) for sample in samples]) / 1024
                               for name in idle}
    restarts: dict[str, float] = {}
    for name in SERVICES:
        cluster.kill(name)
        started = time.monotonic()
        cluster.start_service(name)
        cluster.wait_ready(name, timeout=300)
        restarts[name] = time.monotonic() - started
    out["restart_to_ready_seconds"] = restarts
    return out


def report(out: dict[str, Any]) -> str:
    rows = [(name, f"RSS {out['idle_rss_bytes'][name] / 2**20:.0f} → "
                   f"{out['samples'][-1]['rss_bytes'][name] / 2**20:.0f} MiB, "
                   f"{out['kb_per_execution'][name]:.3f} KB/execution, restart → ready "
                   f"{out['restart_to_ready_seconds'][name]:.1f} s") for name in out["idle_rss_bytes"]]
    return table(rows, f"state after {out['samples'][-1]['executions']} executions through the pipeline")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_state")
    p.add_argument("--executions", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=150.0)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_server", str(stub_port)], cwd=ROOT)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-pipeline-"))
    cluster = Cluster.local(workdir, SWITCHBOARD_LOG_LEVEL="WARNING")
    try:
        cluster.start()
        out = asyncio.run(run(cluster, f"http://127.0.0.1:{stub_port}", args))
    finally:
        cluster.stop()
        stub.terminate()
        stub.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(out))
    print(f"\nresults: {write_result('pipeline-state', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
