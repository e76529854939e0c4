"""The timeout scheduler over the real broker: fires once at its time, cancels win, crashes lose nothing, scale-out.

Each test gets its own topics (a unique topic prefix, hence its own consumer
group) on the session's broker and starts its own scheduler processes, so the
cluster's scheduler is not involved. Processes are stopped or SIGKILLed by PID.
Assertions are about correctness only (exactly once, never early, never a
cancelled timer); every wait has a generous timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from shared.ids import new_sid
from shared.messages import ScheduleTimer, TimerFired, decode, encode
from shared.settings import Settings
from shared.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # generous: the machine is shared; nothing here measures speed


class SchedulerProcess:
    """One ``python -m services.scheduler`` child on a free port; stopped or killed by its PID."""

    def __init__(self, env: dict[str, str], logs: Path, name: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "SWITCHBOARD_SCHEDULER_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SchedulerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "services.scheduler"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL by PID: no goodbye to the group, no flush."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    async def metrics(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{self.port}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
            text = await r.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, number = line.rpartition(" ")
                values[name] = float(number)
        return values

    async def metric(self, name: str) -> float:
        try:
            return (await self.metrics()).get(name, 0.0)
        except (TimeoutError, aiohttp.ClientError):
            return -1.0

    async def ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as session, \
                    session.get(f"http://127.0.0.1:{self.port}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                return r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def wait_ready(self) -> None:
        await until(self.ready, f"scheduler ready (log: {self.log_path})")

    async def owned(self) -> int:
        m = await self.metrics()
        return int(sum(v for k, v in m.items() if k.startswith("switchboard_timer_partitions{")))


async def until(check: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.2)


class Timers:
    """A private set of topics: schedule and cancel timers like the processor, watch what the scheduler fires."""

    def __init__(self, cluster: Cluster) -> None:
        self.prefix = f"it-{uuid.uuid4().hex[:8]}."
        self.env = {**cluster.env, "SWITCHBOARD_TOPIC_PREFIX": self.prefix}
        self.settings = Settings.from_env(self.env)
        self.logs = cluster.workdir / "logs" / self.prefix.rstrip(".")
        self.fires: list[tuple[TimerFired, float, bytes | None]] = []  # (event, received at, record key)
        self.processes: list[SchedulerProcess] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Timers:
        await asyncio.to_thread(create_topics, self.settings)
        self._producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                          enable_idempotence=True, linger_ms=1)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                          enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50)
        await self._consumer.start()
        tps = [TopicPartition(self.settings.topic("events"), p) for p in range(self.settings.event_partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self.processes:
            process.stop()
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _collect(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                for record in records:
                    event = decode(record.value)
                    assert isinstance(event, TimerFired)
                    self.fires.append((event, now, record.key))

    def scheduler(self, name: str) -> SchedulerProcess:
        process = SchedulerProcess(self.env, self.logs, name)
        self.processes.append(process)
        return process

    async def schedule(self, due_at: float, name: str = "") -> ScheduleTimer:
        assert self._producer is not None
        execution = new_sid("FN")
        timer = ScheduleTimer(name or new_sid("TM"), execution, f"FW{'a' * 32}:+1555{uuid.uuid4().int % 10**7:07d}",
                              "7", due_at)
        await self._producer.send_and_wait(self.settings.topic("timers"), encode(timer), key=timer.timer_id.encode())
        return timer

    async def schedule_many(self, dues: Iterable[float]) -> list[ScheduleTimer]:
        return [await self.schedule(due) for due in dues]

    async def cancel(self, timer: ScheduleTimer) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(self.settings.topic("timers"), None, key=timer.timer_id.encode())

    def fired(self) -> Counter[str]:
        return Counter(event.timer_id for event, _, _ in self.fires)

    def fire_of(self, timer: ScheduleTimer) -> TimerFired:
        return next(event for event, _, _ in self.fires if event.timer_id == timer.timer_id)

    async def wait_fired(self, timers: Iterable[ScheduleTimer], timeout: float = WAIT) -> None:
        wanted = {t.timer_id for t in timers}
        await until(lambda: wanted <= set(self.fired()), f"{len(wanted)} timers fired", timeout)

    async def latest_values(self) -> dict[str, bytes | None]:
        """The last value per key in the timers topic (None = tombstone)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            topic = self.settings.topic("timers")
            tps = [TopicPartition(topic, p) for p in range(self.settings.event_partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            latest: dict[str, bytes | None] = {}
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        latest[record.key.decode()] = record.value
            return latest
        finally:
            await consumer.stop()


@pytest.fixture
async def timers(cluster: Cluster) -> AsyncIterator[Timers]:
    async with Timers(cluster) as world:
        yield world


async def settle(seconds: float) -> None:
    """Give a fire that should NOT happen the chance to happen."""
    await asyncio.sleep(seconds)


# -- tests ----------------------------------------------------------------------------------------


async def test_a_timer_fires_once_at_its_time_and_is_then_tombstoned(timers: Timers) -> None:
    scheduler = timers.scheduler("a").start()
    await scheduler.wait_ready()
    timer = await timers.schedule(time.time() + 2)
    await timers.wait_fired([timer])
    await settle(2)
    assert timers.fired() == {timer.timer_id: 1}
    event, received, key = next(f for f in timers.fires if f[0].timer_id == timer.timer_id)
    assert (event.execution_sid, event.route, event.token, event.due_at) == (
        timer.execution_sid, timer.route, timer.token, timer.due_at)
    assert event.fired_at >= timer.due_at and received >= timer.due_at  # never early
    assert key == timer.route.encode()  # keyed like every event of the route
    await until(lambda: _tombstoned(timers, timer), "the fired timer's tombstone")
    assert await scheduler.metric("switchboard_timers_fired_total") == 1
    assert await scheduler.metric("switchboard_timers_pending") == 0
    assert await scheduler.metric("switchboard_timer_lateness_seconds_count") == 1


async def _tombstoned(timers: Timers, timer: ScheduleTimer) -> bool:
    latest = await timers.latest_values()
    return timer.timer_id in latest and latest[timer.timer_id] is None


async def test_a_cancelled_timer_never_fires(timers: Timers) -> None:
    scheduler = timers.scheduler("a").start()
    await scheduler.wait_ready()
    now = time.time()
    cancelled = await timers.schedule(now + 3)
    kept = await timers.schedule(now + 3)
    await until(lambda: _metric_is(scheduler, "switchboard_timers_pending", 2), "both timers pending")
    await timers.cancel(cancelled)
    await timers.wait_fired([kept])
    await settle(2)
    assert timers.fired() == {kept.timer_id: 1}
    assert await scheduler.metric("switchboard_timers_cancelled_total") == 1


async def _metric_is(scheduler: SchedulerProcess, name: str, value: float) -> bool:
    return await scheduler.metric(name) == value


async def test_timers_due_while_no_scheduler_ran_fire_on_start_but_cancelled_ones_never(timers: Timers) -> None:
    # Written before any scheduler exists: the first one must load the whole partition, tombstones included,
    # before it fires anything — overdue timers that were cancelled must not slip out while it is loading.
    now = time.time()
    overdue = await timers.schedule_many([now - 30 + i for i in range(20)])
    cancelled = await timers.schedule_many([now - 30 + i for i in range(20)])
    for timer in cancelled:
        await timers.cancel(timer)
    future = await timers.schedule(now + 8)
    scheduler = timers.scheduler("a").start()
    await timers.wait_fired([*overdue, future])
    await settle(2)
    assert timers.fired() == Counter({t.timer_id: 1 for t in [*overdue, future]})
    assert timers.fire_of(future).fired_at >= future.due_at
    assert await scheduler.metric("switchboard_timers_cancelled_total") == 0  # history, not live cancels


async def test_a_scheduler_killed_with_timers_pending_loses_none_after_restart(timers: Timers) -> None:
    first = timers.scheduler("first").start()
    await first.wait_ready()
    now = time.time()
    due_while_down = await timers.schedule_many([now + 6 + i / 10 for i in range(20)])
    due_after_restart = await timers.schedule_many([now + 45 + i / 10 for i in range(20)])
    cancelled = await timers.schedule_many([now + 6] * 5)
    for timer in cancelled[:3]:
        await timers.cancel(timer)
    await until(lambda: _metric_is(first, "switchboard_timers_pending", 42), "42 timers pending")
    first.kill()

    # While nobody runs: the rest are cancelled, one more timer is set, and the first batch comes due.
    for timer in cancelled[3:]:
        await timers.cancel(timer)
    set_while_down = await timers.schedule(now + 7)
    await asyncio.sleep(max(0.0, now + 9 - time.time()))
    assert timers.fired() == {}

    restarted_at = time.time()
    second = timers.scheduler("second").start()
    await timers.wait_fired([*due_while_down, set_while_down], timeout=90)  # after the dead member's session ends
    assert all(timers.fire_of(t).fired_at >= restarted_at for t in [*due_while_down, set_while_down])
    await second.wait_ready()
    assert not set(timers.fired()) & {t.timer_id for t in due_after_restart}, "fired before its time"
    await timers.wait_fired(due_after_restart, timeout=90)
    await settle(2)
    assert timers.fired() == Counter({t.timer_id: 1 for t in [*due_while_down, set_while_down, *due_after_restart]})
    assert all(timers.fire_of(t).fired_at >= t.due_at for t in due_after_restart)
    assert await second.metric("switchboard_timer_recovery_seconds") > 0


async def test_two_schedulers_share_the_partitions_and_each_timer_fires_once(timers: Timers) -> None:
    a = timers.scheduler("a").start()
    b = timers.scheduler("b").start()
    await until(lambda: _split(a, b), "both schedulers own partitions, all 8 between them")
    await a.wait_ready()
    await b.wait_ready()
    now = time.time()
    batch = await timers.schedule_many([now + 4 + i / 100 for i in range(120)])
    await timers.wait_fired(batch)
    await settle(2)
    assert timers.fired() == Counter({t.timer_id: 1 for t in batch})
    fired_a = await a.metric("switchboard_timers_fired_total")
    fired_b = await b.metric("switchboard_timers_fired_total")
    assert fired_a > 0 and fired_b > 0 and fired_a + fired_b == len(batch)


async def _split(a: SchedulerProcess, b: SchedulerProcess) -> bool:
    try:
        owned_a, owned_b = await a.owned(), await b.owned()
    except (TimeoutError, aiohttp.ClientError):
        return False
    return owned_a > 0 and owned_b > 0 and owned_a + owned_b == 8


async def test_a_rebalance_moves_pending_timers_with_their_partitions(timers: Timers) -> None:
    a = timers.scheduler("a").start()
    await a.wait_ready()
    now = time.time()
    first = await timers.schedule_many([now + 25 + i / 100 for i in range(80)])
    await until(lambda: _metric_is(a, "switchboard_timers_pending", 80), "80 timers pending on a")

    b = timers.scheduler("b").start()  # joins: half the partitions, with their pending timers, move to b
    await until(lambda: _split(a, b), "the partitions split between a and b")
    await a.wait_ready()
    await b.wait_ready()
    assert await a.metric("switchboard_timers_pending") + await b.metric("switchboard_timers_pending") == 80
    await timers.wait_fired(first)

    b.stop()  # leaves: its partitions move back to a
    later = await timers.schedule_many([time.time() + 3 + i / 100 for i in range(40)])
    await timers.wait_fired(later)
    await settle(2)
    assert timers.fired() == Counter({t.timer_id: 1 for t in [*first, *later]})
    assert all(timers.fire_of(t).fired_at >= t.due_at for t in [*first, *later])
