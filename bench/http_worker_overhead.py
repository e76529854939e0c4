"""Micro-benchmark: what ``Performer.perform()`` costs on top of a plain aiohttp call.

Run (a few seconds; the stub server runs in its own process on 127.0.0.1)::

    .venv/bin/python -m bench.http_worker_overhead            # ~6 s in all
    .venv/bin/python -m bench.http_worker_overhead --seconds 3 --concurrency 64

Phases, each against the same local stub (``bench.stub_server``, a 45-byte JSON answer):

* sequential latency, one request at a time (the two alternate): a direct ``session.get`` + ``read()``
  on a default ``ClientSession`` versus ``perform()`` (request preparation, the
  outbound-policy check, the guarded resolver, the capped read, building the
  ``HttpResult``). The difference is perform()'s overhead per request.
* throughput of one process: ``--concurrency`` requests in flight, direct versus
  ``perform()``; this is the HTTP side of one http-worker process. Kafka
  (consume, produce with acks=all, commit) is not included - the full pipeline
  is measured by ``bench/run.py``.

Numbers depend on the machine and its load (the stub shares the cores); compare
the two columns of one run, not runs on different days. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp

from bench.common import table, write_result
from devtools.kafka_broker import free_port
from services.http_worker.perform import Performer
from services.http_worker.policy import OutboundPolicy
from services.http_worker.service import make_session
from shared.messages import HttpRequest
from shared.settings import Settings


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"stub server at {url} did not come up")


async def _sequential(a: Callable[[], Awaitable[None]], b: Callable[[], Awaitable[None]],
                      seconds: float) -> tuple[list[float], list[float]]:
    """Alternate ``a`` and ``b`` one call at a time, so background load hits both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for call, out in ((a, samples[0]), (b, samples[1])):
            t0 = time.perf_counter()
            await call()
            out.append(time.perf_counter() - t0)
    return samples


async def _throughput(call: Callable[[], Awaitable[None]], seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def lane() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:8.0f} µs"


async def bench(seconds: float, concurrency: int, figures: dict[str, float]) -> list[tuple[str, str]]:
    port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_server", str(port)])
    try:
        url = f"http://127.0.0.1:{port}/person"
        await _wait_up(url)
        settings = Settings(outbound_allow=("127.0.0.1/32",), http_concurrency=max(concurrency, 16))
        policy = OutboundPolicy(settings.outbound_networks, settings.outbound_hosts)
        request = HttpRequest(
            request_id="RQ" + "0" * 32, execution_sid="FN" + "0" * 32, route="FW0:+15550000000", token="t",
            purpose="http", method="GET", url=url, content_type="application/x-www-form-urlencoded", body=None,
            form=[], query=[["name", "Ann"]], twilio_auth=False, accept_3xx=False, created_at=0.0,
        )
        direct_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.http_concurrency))
        performer = Performer(make_session(settings, policy), settings, policy)

        async def direct() -> None:
            async with direct_session.get(url, params={"name": "Ann"}) as response:
                await response.read()

        async def perform() -> None:
            result = await performer.perform(replace(request))
            if not result.ok:
                raise RuntimeError(result.error)

        try:
            for call in (direct, perform):  # warm up connections and caches
                for _ in range(50):
                    await call()
            seq_direct, seq_perform = await _sequential(direct, perform, 2 * seconds)
            # A B A B halves, so a load spike on the machine does not land on one side only.
            halves = [await _throughput(call, seconds / 2, concurrency) for call in (direct, perform, direct, perform)]
            rps_direct, rps_perform = (halves[0] + halves[2]) / 2, (halves[1] + halves[3]) / 2
        finally:
            await direct_session.close()
            await performer.session.close()
    finally:
        stub.terminate()
        stub.wait(timeout=5)
    d50, p50 = statistics.median(seq_direct), statistics.median(seq_perform)
    d_mean, p_mean = statistics.fmean(seq_direct), statistics.fmean(seq_perform)
    figures.update({"sequential_p50_direct_seconds": d50, "sequential_p50_perform_seconds": p50,
                    "overhead_p50_seconds": p50 - d50, "overhead_mean_seconds": p_mean - d_mean,
                    "requests_per_s_direct": rps_direct, "requests_per_s_perform": rps_perform,
                    "concurrency": concurrency, "samples": len(seq_direct) + len(seq_perform)})
    return [
        ("sequential p50, direct aiohttp", _us(d50)),
        ("sequential p50, perform()", _us(p50)),
        ("perform() overhead per request (p50)", _us(p50 - d50)),
        ("perform() overhead per request (mean)", _us(p_mean - d_mean)),
        (f"requests/s, direct aiohttp, {concurrency} in flight", f"{rps_direct:8.0f}"),
        (f"requests/s, perform(), {concurrency} in flight", f"{rps_perform:8.0f}"),
        ("perform() throughput vs direct", f"{rps_perform / rps_direct:8.0%}"),
        ("samples (sequential direct / perform)", f"{len(seq_direct)} / {len(seq_perform)}"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http_worker_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="the latency phase runs 2x this, the throughput phases 2x this together")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight in the throughput phases")
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    rows = asyncio.run(bench(args.seconds, args.concurrency, figures))
    print(table(rows, "http-worker: perform() overhead and one-process throughput (127.0.0.1 stub)"))
    print(f"\nresults: {write_result('http-worker', {'settings': vars(args), 'perform': figures})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
