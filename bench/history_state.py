"""``make bench-state`` (ingress part): the history read path with many retained executions. Not a test.

On its own Kafka broker (started here, stopped by PID):

1. the raw Kafka floor (``bench.kafka_baseline``), to report figures as ratios;
2. one ``python -m services.ingress`` with its SQLite history store; idle RSS;
3. ``--executions`` ended executions written straight to the ``history`` topic as the processor writes them
   (one ``HistoryBatch`` each: 6 steps + the snapshot, contexts shaped like the 6-widget flow's), over
   ``--flows`` flows, distinct contacts, ended over the last 25 days; RSS sampled as the store fills:
   **KB per execution = the slope of RSS over executions held** (least squares);
4. the read path against the full store: list (first page, a page 50 pages deep by token, Status=ended,
   a date window), fetch execution, its context, its steps, one step's context; p50/p99 each;
5. restart to ready (SIGKILL, then start: the store resumes from its offsets, reading only the tail), and a
   rebuild from the topic when the disk is lost (the file deleted);
6. retention: the retention is lowered so that part of the history expires; time until the store holds
   only the retained part, and the file's size before and after (disk space coming back).

Results: ``bench/results/<date>-history-state.json`` and a printed table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import summarize, table, write_result
from bench.cpu import rss_bytes
from bench.kafka_baseline import measure_baseline
from devtools.kafka_broker import KafkaBroker, free_port
from shared.flow_catalog import flow_key
from shared.ids import new_sid
from shared.messages import ExecutionRecord, FlowRecord, StepRecord, encode, history_batch
from shared.settings import Settings
from shared.topics import create_topics

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
WIDGETS = [("Trigger", "trigger", "incomingRequest"), ("set_vars", "set-variables", "next"),
           ("lookup", "make-http-request", "success"), ("check_age", "split-based-on", "match"),
           ("greet", "set-variables", "next"), ("done", "set-variables", "next")]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else float("nan")


def _execution(flow: str, n: int, ended_at: float) -> list[ExecutionRecord | StepRecord]:
    sid = new_sid("FN")
    contact = f"+1555{n:07d}"
    created = ended_at - 1.5
    context: dict[str, Any] = {"flow": {"flow_sid": flow, "channel": {"address": "+15550001111"}, "data": {"n": n},
                        "variables": {"greeting": "Hello Bob", "age": "40"}},
               "contact": {"channel": {"address": contact}},
               "trigger": {"request": {"parameters": {"n": n}}},
               "widgets": {"lookup": {"status_code": 200, "content_type": "application/json",
                                      "body": '{"person": {"name": "Bob", "age": 40}}',
                                      "parsed": {"person": {"name": "Bob", "age": 40}}}}}
    records: list[ExecutionRecord | StepRecord] = []
    for i, (name, type_, event) in enumerate(WIDGETS):
        nxt = WIDGETS[i + 1][0] if i + 1 < len(WIDGETS) else "Ended"
        step_context = context["widgets"]["lookup"] if name == "lookup" else {}
        records.append(StepRecord(sid="FT" + sid[2:31] + f"{i:03d}", execution_sid=sid, flow_sid=flow,
                                  index=i, name=event, transitioned_from=name, transitioned_to=nxt, type=type_,
                                  context=step_context, date_created=created + i * 0.2,
                                  date_updated=created + i * 0.2))
    records.append(ExecutionRecord(sid=sid, flow_sid=flow, revision=1, route=f"{flow}:{contact}",
                                   contact_address=contact, channel_address="+15550001111", status="ended",
                                   context=context, initiated_by="RQ" + sid[2:], date_created=created,
                                   date_updated=ended_at, step_count=len(WIDGETS)))
    return records


class Ingress:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "SWITCHBOARD_INGRESS_PORT": str(self.port), "PYTHONUNBUFFERED": "1",
                    "SWITCHBOARD_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "services.ingress"], cwd=ROOT, env=self.env,
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

    async def wait_ready(self, timeout: float = 900) -> float:
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < timeout:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"ingress exited; see {self.log}")
                try:
                    async with session.get(f"{self.base}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                        if r.status == 200:
                            return time.monotonic() - started
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"ingress not ready within {timeout}s; see {self.log}")


def _held(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM executions").fetchone()[0])
    except sqlite3.Error:
        return 0


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.exists())


async def _timed(session: aiohttp.ClientSession, url: str, samples: list[float]) -> Any:
    started = time.perf_counter()
    async with session.get(url) as r:
        body = await r.json()
        assert r.status == 200, (url, r.status, body)
    samples.append((time.perf_counter() - started) * 1000)
    return body


async def _read_path(ingress: Ingress, settings: Settings, flows: list[str], sample: list[tuple[str, str]],
                     n: int) -> dict[str, Any]:
    headers = {"Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)}
    lat: dict[str, list[float]] = {k: [] for k in ("list_first_page", "list_deep_page", "list_status_ended",
                                                    "list_date_window", "execution", "execution_context",
                                                    "steps", "step_context")}
    async with aiohttp.ClientSession(headers=headers) as session:
        base = ingress.base
        # A token 50 pages deep, per flow (paging is by key: a deep page costs what the first does).
        deep: dict[str, str] = {}
        for flow in flows:
            url = f"{base}/v2/Flows/{flow}/Executions?PageSize=50"
            for _ in range(50):
                body = await _timed(session, url, [])
                url = body["meta"]["next_page_url"] or url
            deep[flow] = url
        now = time.time()
        for i in range(n):
            flow, sid = sample[i % len(sample)]
            await _timed(session, f"{base}/v2/Flows/{flow}/Executions?PageSize=50", lat["list_first_page"])
            await _timed(session, deep[flow], lat["list_deep_page"])
            await _timed(session, f"{base}/v2/Flows/{flow}/Executions?PageSize=50&Status=ended", lat["list_status_ended"])
            start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - (5 + i % 15) * DAY))
            end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - (4 + i % 15) * DAY))
            await _timed(session, f"{base}/v2/Flows/{flow}/Executions?PageSize=50&DateCreatedFrom={start}"
                                  f"&DateCreatedTo={end}", lat["list_date_window"])
            await _timed(session, f"{base}/v2/Flows/{flow}/Executions/{sid}", lat["execution"])
            await _timed(session, f"{base}/v2/Flows/{flow}/Executions/{sid}/Context", lat["execution_context"])
            steps = await _timed(session, f"{base}/v2/Flows/{flow}/Executions/{sid}/Steps", lat["steps"])
            step = steps["steps"][i % len(steps["steps"])]["sid"]
            await _timed(session, f"{base}/v2/Flows/{flow}/Executions/{sid}/Steps/{step}/Context", lat["step_context"])
    return {k: summarize(v) for k, v in lat.items()}


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    broker = KafkaBroker(workdir / "kafka", free_port(), free_port(), heap="1g")
    broker.start()
    ingress: Ingress | None = None
    try:
        env = {"SWITCHBOARD_KAFKA_BOOTSTRAP": broker.bootstrap, "SWITCHBOARD_TOPIC_PREFIX": "bench.",
               "SWITCHBOARD_LOG_JSON": "true", "SWITCHBOARD_DATA_DIR": str(workdir / "data"),
               "SWITCHBOARD_LAG_SAMPLE_SECONDS": "0"}
        settings = Settings.from_env(env)
        create_topics(settings)
        db = workdir / "data" / "ingress-0" / "history.sqlite3"
        out: dict[str, Any] = {"settings": {"executions": args.executions, "flows": args.flows,
                                            "steps_per_execution": len(WIDGETS),
                                            "sqlite_cache_kib_per_connection": settings.history_cache_kib}}
        print("measuring the raw Kafka floor…", flush=True)
        out["baseline"] = await measure_baseline(broker.bootstrap, round_trips=300, burst=10000)

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=5, max_batch_size=512 * 1024)
        await producer.start()
        flows = [new_sid("FW") for _ in range(args.flows)]
        now = time.time()
        for flow in flows:
            definition = {"description": "bench", "states": [{"name": "Trigger", "type": "trigger", "properties": {},
                                                              "transitions": []}], "initial_state": "Trigger",
                          "flags": {"allow_concurrent_calls": True}}
            record = FlowRecord(sid=flow, revision=1, friendly_name="bench", status="published",
                                definition=definition, commit_message="", valid=True, errors=[], warnings=[],
                                date_created=now, date_updated=now)
            await producer.send_and_wait(settings.topic("flows"), encode(record), key=flow_key(flow, 1))

        ingress = Ingress(env, workdir / "ingress.log")
        ingress.start()
        await ingress.wait_ready()
        await asyncio.sleep(2)
        out["rss_idle_bytes"] = rss_bytes(ingress.pid)

        print(f"writing {args.executions} executions to the history topic…", flush=True)
        xs: list[float] = []
        ys: list[float] = []
        sample: list[tuple[str, str]] = []
        started = time.monotonic()
        checkpoints = max(1, args.executions // 10)
        pending = []
        for n in range(args.executions):
            flow = flows[n % len(flows)]
            records = _execution(flow, n, now - random.random() * 25 * DAY)
            (batch,) = history_batch(records)
            pending.append(await producer.send(settings.topic("history"), encode(batch),
                                               key=batch.execution_sid.encode()))
            if n % 997 == 0:
                sample.append((flow, batch.execution_sid))
            if (n + 1) % checkpoints == 0:
                await asyncio.gather(*pending)
                pending.clear()
                while _held(db) < n + 1 - 5:  # let the ingress catch up, then sample its memory
                    await asyncio.sleep(0.5)
                xs.append(float(_held(db)))
                ys.append(float(rss_bytes(ingress.pid)))
                print(f"  {n + 1} held, RSS {ys[-1] / 2**20:.0f} MiB", flush=True)
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - started
        out["fill"] = {"seconds": elapsed, "executions_per_s": args.executions / elapsed,
                       "samples": [{"held": x, "rss_bytes": y} for x, y in zip(xs, ys, strict=True)]}
        out["memory"] = {"rss_bytes": ys[-1], "kb_per_execution_slope": slope(xs, ys) / 1024,
                         "file_bytes": _file_bytes(db)}

        print("reading…", flush=True)
        out["read_path_ms"] = await _read_path(ingress, settings, flows, sample, args.reads)
        out["memory"]["rss_after_reads_bytes"] = rss_bytes(ingress.pid)

        print("restart…", flush=True)
        ingress.kill()
        ingress.start()
        out["restart_to_ready_seconds"] = await ingress.wait_ready()
        await asyncio.sleep(1)
        out["memory"]["rss_after_restart_bytes"] = rss_bytes(ingress.pid)
        ingress.stop()
        for p in db.parent.glob(db.name + "*"):
            p.unlink()
        ingress.start()
        out["rebuild_from_topic_seconds"] = await ingress.wait_ready()
        out["memory"]["rss_after_rebuild_bytes"] = rss_bytes(ingress.pid)
        ingress.stop()

        # Retention: keep 10 of the 25 days; the janitor deletes the rest (in chunks) and vacuums.
        before = _file_bytes(db)
        held_before = _held(db)
        env_short = {**env, "SWITCHBOARD_HISTORY_RETENTION_SECONDS": str(int(10 * DAY))}
        ingress = Ingress(env_short, workdir / "ingress.log")
        ingress.start()
        await ingress.wait_ready()
        started = time.monotonic()
        previous: tuple[int, int] = (-1, -1)
        while True:  # until the janitor has deleted what expired and handed the space back (both stable)
            held, size = _held(db), _file_bytes(db)
            if (held, size) == previous and held < held_before:
                break
            previous = (held, size)
            await asyncio.sleep(10.5)
        out["retention"] = {"held_before": held_before, "held_after": held, "seconds": time.monotonic() - started,
                            "file_bytes_before": before, "file_bytes_after": _file_bytes(db)}
        await producer.stop()
        return out
    finally:
        if ingress is not None:
            ingress.stop()
        broker.stop()


def report(out: dict[str, Any]) -> str:
    rt = out["baseline"]["round_trip_seconds"]["p50"] * 1000
    rows = [("executions held", f"{out['settings']['executions']}"),
            ("ingress RSS idle / full", f"{out['rss_idle_bytes'] / 2**20:.0f} / {out['memory']['rss_bytes'] / 2**20:.0f} MiB"),
            ("KB per execution (slope)", f"{out['memory']['kb_per_execution_slope']:.3f}"),
            ("SQLite file", f"{out['memory']['file_bytes'] / 2**20:.0f} MiB"),
            ("restart to ready", f"{out['restart_to_ready_seconds']:.2f} s"),
            ("rebuild from topic", f"{out['rebuild_from_topic_seconds']:.1f} s")]
    for name, s in out["read_path_ms"].items():
        rows.append((f"{name} p50/p99", f"{s['p50']:.1f} / {s['p99']:.1f} ms ({s['p99'] / rt:.1f}× Kafka rt p50)"))
    r = out["retention"]
    rows.append(("retention", f"{r['held_before']} → {r['held_after']} in {r['seconds']:.0f} s; file "
                              f"{r['file_bytes_before'] / 2**20:.0f} → {r['file_bytes_after'] / 2**20:.0f} MiB"))
    return table(rows, "history state")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--executions", type=int, default=1_000_000)
    p.add_argument("--flows", type=int, default=10)
    p.add_argument("--reads", type=int, default=300, help="rounds of the read path (8 requests each)")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-history-"))
    try:
        out = asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    path = write_result("history-state", out)
    print(report(out))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
