"""``python -m bench.faults [--quick] [--seed N]``: run the fault suite once and write its result file.

Exit status 0 only if nothing was lost, duplicated, stuck or wrongly ended, every webhook and REST request was
answered (but for those cut by an ingress SIGKILL), and no consumer group lag remained.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from devtools.postgres_server import PostgresServer
from devtools.simulator import Simulator, twiml_app
from shared.settings import Settings
from tests.integration.messages_api import MessagesApi

from .balancer import Balancer
from .flows import KINDS
from .injector import Injector, plan
from .settle import expected_groups, wait_groups_stable
from .topology import SERVICES, Topology
from .verify import consumer_lag, verify, wait_settled
from .workload import Recorder, Workload

RESULTS = Path(__file__).resolve().parent.parent / "results"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-faults-"))
    defaults = Settings()
    messages = MessagesApi(defaults.account_sid, defaults.auth_token)
    messages.start()
    postgres: PostgresServer | None = None
    extra: dict[str, str] = {}
    if args.history_store == "postgres":  # one shared history copy instead of an SQLite file per ingress
        # Not inside workdir (mode 0700): under root the server runs as another user, who must reach its folder.
        postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="switchboard-faults-pg-")))
        await asyncio.to_thread(postgres.start)
        extra = {"SWITCHBOARD_HISTORY_STORE": "postgres", "SWITCHBOARD_HISTORY_POSTGRES_DSN": postgres.dsn()}
    topology = Topology.local(workdir, messages.base, extra_env=extra)
    public = topology.env["SWITCHBOARD_PUBLIC_BASE_URL"]
    recorder = Recorder(args.seed)
    runners: list[web.AppRunner] = []
    balancer: Balancer | None = None
    try:
        await asyncio.to_thread(topology.start)
        await _settle(topology, 180)
        print(f"cluster up and settled in {time.monotonic() - began:.0f}s ({workdir})", flush=True)
        balancer = Balancer(topology.ingress_urls())
        await balancer.start(topology.public_port)
        runner, recorder_url = await _serve(recorder.app)
        runners.append(runner)
        runner, app_url = await _serve(twiml_app("Hello from the TwiML app.", {"foo": "bar"}, base_url=public))
        runners.append(runner)
        load = Workload(public, defaults.account_sid, defaults.auth_token, messages, recorder_url, app_url, args.seed)
        await load.open()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as sim_session:
            sim = Simulator(public, defaults.account_sid, defaults.auth_token, sim_session, timeout=60)
            await load.create_flows()
            reference = await _reference(load, sim)
            load.started.clear()
            result = await _load_with_faults(args, rng, topology, load, sim)
            load_seconds = time.monotonic() - began
            await wait_settled(load, 300)
            lag = await _lag_drained(topology.kafka.bootstrap)
            await wait_settled(load, 120)  # events the lag still held (a timer fired late) have run their course
            verdict = await verify(load, recorder, messages, reference)
        await load.close()
        figures = {
            "seed": args.seed, "quick": args.quick, "history_store": args.history_store, "rate": args.rate,
            "executions": len(load.started),
            "by_kind": {k.name: sum(1 for s in load.started if s.kind == k.name) for k in KINDS},
            "lost": verdict.lost, "duplicated_steps": verdict.duplicated_steps, "stuck": verdict.stuck,
            "wrong_end": verdict.wrong_end, "webhook_errors": verdict.webhook_errors,
            "rest_errors": verdict.rest_errors, "cut_by_ingress_kill": verdict.cut_by_ingress_kill,
            "rest_retried": verdict.rest_retried,
            "disturbed": verdict.disturbed,
            "repeated_requests_same_key": verdict.repeated_requests, "consumer_lag": lag,
            "balancer": {"refused_and_moved": balancer.refused,
                         "failed_mid_request": [vars(f) for f in balancer.failures]},
            "faults": result, "findings": verdict.findings,
            "reference_paths": reference, "load_seconds": round(load_seconds, 1),
            "duration_seconds": round(time.monotonic() - began, 1),
            "logs": str(workdir / "logs") if args.keep else None,
        }
        return figures
    finally:
        if balancer is not None:
            await balancer.stop()
        for runner in runners:
            await runner.cleanup()
        await asyncio.to_thread(topology.stop)
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
            shutil.rmtree(postgres.workdir, ignore_errors=True)
        messages.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def _settle(topology: Topology, timeout: float) -> None:
    """Every group stable with all its replicas, then every replica ready (see ``settle.py``)."""
    expected = expected_groups(Settings.from_env(topology.env), {name: topology.replicas for name in SERVICES})
    await wait_groups_stable(topology.kafka.bootstrap, expected, timeout)
    for label in topology.labels():
        await asyncio.to_thread(topology.services.wait_ready, label, timeout)


async def _reference(load: Workload, sim: Simulator) -> dict[str, list[tuple[str, str, str]]]:
    """One execution of each kind before any fault: the paths the flows take when nothing goes wrong.

    Nothing is disturbed here, so any error a client sees is the engine's and fails the run, with what the
    client saw."""
    from .verify import executions_by_contact

    records = await asyncio.gather(*(load.run_one(kind, f"+1444{n:07d}", sim) for n, kind in enumerate(KINDS)))
    failed = [(r.kind, r.errors) for r in records if r.errors]
    if failed:
        raise RuntimeError(f"reference executions failed without any fault: {failed}")
    await wait_settled(load, 120)
    paths: dict[str, list[tuple[str, str, str]]] = {}
    for record in records:
        flow = load.flows[record.kind]
        found = (await executions_by_contact(load, flow)).get(record.contact, [])
        if len(found) != 1:
            raise RuntimeError(f"reference {record.kind} ({record.contact}): {len(found)} executions; "
                               f"the client saw {record.errors or 'no error'}")
        (execution,) = found
        _, body = await load.get(f"/v2/Flows/{flow}/Executions/{execution['sid']}/Steps?PageSize=1000")
        paths[record.kind] = [(s["name"], s["transitioned_from"], s["transitioned_to"])
                              for s in reversed(body["steps"])]
        kind = next(k for k in KINDS if k.name == record.kind)
        if kind.path and paths[record.kind] != kind.path:
            raise RuntimeError(f"{kind.name} takes {paths[record.kind]} without faults, not {kind.path}")
    return paths


async def _load_with_faults(args: argparse.Namespace, rng: random.Random, topology: Topology,
                            load: Workload, sim: Simulator) -> list[dict[str, Any]]:
    injector = Injector(topology, random.Random(rng.random()))
    load.t0 = injector.started
    run_id = rng.randrange(10**4)
    enough = asyncio.Event()  # the load has started its executions: finish the round under way, start no more

    async def faults() -> None:
        rounds = 0
        while rounds == 0 or (not args.quick and not enough.is_set()):
            await injector.run(plan(injector.rng, topology.replicas, args.quick), (2.0, 6.0))
            rounds += 1

    async def drive() -> None:
        tasks: list[asyncio.Task[Any]] = []
        limit = asyncio.Semaphore(args.concurrency)

        async def one(n: int) -> None:
            async with limit:
                await load.run_one(load.pick(rng), f"+1{run_id:04d}{n:06d}", sim)

        n = 0
        while n < args.executions or not fault_task.done():
            tasks.append(asyncio.create_task(one(n)))
            n += 1
            if n >= args.executions:
                enough.set()
            await asyncio.sleep(rng.expovariate(args.rate))
            if n % 100 == 0:
                print(f"{injector.now():.0f}s: {n} started, {len(injector.done)} faults", flush=True)
        await asyncio.gather(*tasks)

    fault_task = asyncio.create_task(faults())
    await drive()
    await fault_task
    return injector.report()


async def _lag_drained(bootstrap: str, timeout: float = 120) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        lag = await consumer_lag(bootstrap)
        if not any(lag.values()) or time.monotonic() > deadline:
            return lag
        await asyncio.sleep(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--quick", action="store_true", help="one round of faults, ~200 executions (< 10 min)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--executions", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="executions started per second")
    parser.add_argument("--concurrency", type=int, default=150)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, Kafka data)")
    parser.add_argument("--history-store", choices=("sqlite", "postgres"), default="sqlite",
                        help="the ingress's history store (postgres: a throw-away PostgreSQL server)")
    args = parser.parse_args(argv)
    args.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    args.executions = args.executions or (150 if args.quick else 2000)
    args.rate = args.rate or (1.5 if args.quick else 4.0)
    figures = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    variant = ("-quick" if args.quick else "") + ("-postgres" if args.history_store == "postgres" else "")
    out = RESULTS / f"{time.strftime('%Y-%m-%dT%H%M%SZ', time.gmtime())}-faults{variant}.json"
    out.write_text(json.dumps(figures, indent=1, default=list))
    summary = {k: figures[k] for k in ("seed", "executions", "lost", "duplicated_steps", "stuck", "wrong_end",
                                       "webhook_errors", "rest_errors", "cut_by_ingress_kill", "rest_retried", "disturbed",
                                       "consumer_lag",
                                       "duration_seconds")}
    print(json.dumps(summary), f"faults={len(figures['faults'])}", out, flush=True)
    bad = any(figures[k] for k in ("lost", "duplicated_steps", "stuck", "wrong_end", "webhook_errors", "rest_errors"))
    return 1 if bad or any(figures["consumer_lag"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
