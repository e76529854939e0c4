"""The batched processor loop's guarantees (services/processor/loop.py), against the real broker.

* SIGKILLed mid-batch under a stream of starts, then restarted on its own data folder: every execution still
  ends exactly once with exactly its steps, and the restarted processor loaded its rows from RocksDB plus the
  changelog's tail (a few records), not from the whole changelog.
* A zombie: a processor SIGSTOPped past the session timeout while a second one takes its partitions over, then
  woken. Its refused commit leaves its outputs as harmless duplicates; it rejoins, loads what it gets back, and
  every execution ends exactly once with exactly its steps.

Both use the same counting flow as the crash test (an HTTP call per round), so an event applied twice or lost
would show as a wrong count, a repeated or missing step, or an execution that never ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from shared.settings import Settings
from shared.topics import changelog_topics
from tests.integration.messages_api import MessagesApi
from tests.integration.test_crash_recovery import CHANNEL, EXPECTED, FLOW, ROUNDS, Work
from tests.integration.test_processor_replicas import _wait_ready
from tests.integration.widget_flows import context, path, phone

EXECUTIONS = 30

pytestmark = pytest.mark.skipif(os.environ.get("SWITCHBOARD_PROCESSOR_LOOP", "batched") != "batched",
                                reason="the batched loop's guarantees (SWITCHBOARD_PROCESSOR_LOOP=faust runs)")


async def _changelog_records(settings: Settings) -> int:
    """Records in the routes changelog (end - beginning offsets, summed over its partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(changelog_topics(settings)[0], p) for p in range(settings.event_partitions)]
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


def _loaded_lines(cluster: Cluster, label: str) -> list[dict[str, Any]]:
    lines = (cluster.workdir / "logs" / f"{label}.log").read_text().splitlines()
    return [line for line in (json.loads(t) for t in lines if t.startswith("{"))
            if line.get("msg") == "event partitions loaded"]


async def _all_end_exactly(api: Any, messages_api: MessagesApi, flow_sid: str, sids: dict[str, str],
                           work: Work) -> None:
    for contact, sid in sids.items():
        await api.wait_ended(flow_sid, sid, timeout=180)
        steps = await api.steps(flow_sid, sid)
        assert path(steps) == EXPECTED, (sid, path(steps))
        assert [s["sid"] for s in steps] == list(dict.fromkeys(s["sid"] for s in steps))  # each step once
        ctx = await context(api, flow_sid, sid)
        assert ctx["flow"]["variables"] == {"count": ROUNDS}
        (message,) = messages_api.messages(contact)
        assert message["body"] == f"done {ROUNDS} {ROUNDS}"
    keys: dict[tuple[str, str], set[str]] = {}
    for execution, n, key in work.requests:
        keys.setdefault((execution, n), set()).add(key)
    assert set(keys) == {(sid, str(n)) for sid in sids.values() for n in range(1, ROUNDS + 1)}
    assert all(len(k) == 1 for k in keys.values()), "a repeated request must carry the same idempotency key"


async def test_a_processor_killed_mid_batch_restarts_from_rocksdb_and_the_changelog_tail(
        api: Any, cluster: Cluster, settings: Settings, http_server: Any, messages_api: MessagesApi) -> None:
    work = Work()
    base = await http_server(work.app)
    flow_sid = await api.create_flow(FLOW, name="loop-kill")
    sids: dict[str, str] = {}

    async def start(contact: str) -> None:
        sids[contact] = (await api.start(flow_sid, to=contact, from_=CHANNEL, params={"base": base}))["sid"]

    await asyncio.gather(*(start(phone()) for _ in range(EXECUTIONS // 2)))
    while len(work.requests) < EXECUTIONS // 2:  # their first batches are sent ...
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # ... and committed: their rows are in the local store (the executions still wait)
    # Kill while starts keep coming and results keep arriving: some batch is in hand, sent or half sent.
    late = [phone() for _ in range(EXECUTIONS // 2)]
    starting = asyncio.ensure_future(asyncio.gather(*(start(c) for c in late), return_exceptions=True))
    await asyncio.sleep(0.05)
    before = len(_loaded_lines(cluster, "processor"))
    cluster.kill("processor")
    cluster.start_service("processor")
    await asyncio.to_thread(cluster.wait_ready, "processor", 120.0)
    await starting
    # A create whose start was written but not answered before the kill gets 503 (the partitions move only after
    # the session timeout, as long as the REST reply budget): the execution runs all the same; find it by contact.
    deadline = asyncio.get_running_loop().time() + 60
    while [c for c in late if c not in sids]:
        assert asyncio.get_running_loop().time() < deadline, [c for c in late if c not in sids]
        code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions?PageSize=100")
        assert code == 200, body
        for execution in body["executions"]:
            sids.setdefault(execution["contact_channel_address"], execution["sid"])
        await asyncio.sleep(0.5)

    await _all_end_exactly(api, messages_api, flow_sid, sids, work)
    loaded = _loaded_lines(cluster, "processor")[before:]
    assert loaded, "the restarted processor logged its recovery"
    total = await _changelog_records(settings)
    read = sum(line["changelog_records"] for line in loaded)
    # The local rows were reused: only the changelog written since the last committed batch (and by the
    # executions above) was read, not the whole changelog the earlier tests wrote.
    assert read < total / 2, (read, total)
    assert sum(line["local_rows"] for line in loaded) > 0, loaded  # the waiting executions' rows, from RocksDB


@pytest.fixture
def second_processor(cluster: Cluster) -> Iterator[str]:
    port = free_port()
    cluster.ports["processor-z"] = port
    cluster.start_service("processor", label="processor-z", extra_env={"SWITCHBOARD_PROCESSOR_PORT": str(port)})
    try:
        _wait_ready(port)
        _wait_ready(cluster.ports["processor"])
        yield "processor-z"
    finally:
        cluster.stop_service("processor-z")
        cluster.ports.pop("processor-z", None)
        _wait_ready(cluster.ports["processor"], timeout=120)


async def test_a_zombie_processor_that_wakes_changes_no_execution(
        api: Any, cluster: Cluster, http_server: Any, messages_api: MessagesApi, second_processor: str) -> None:
    work = Work()
    base = await http_server(work.app)
    flow_sid = await api.create_flow(FLOW, name="loop-zombie")
    sids: dict[str, str] = {}

    async def start(contact: str) -> None:
        sids[contact] = (await api.start(flow_sid, to=contact, from_=CHANNEL, params={"base": base}))["sid"]

    await asyncio.gather(*(start(phone()) for _ in range(EXECUTIONS // 2)))
    zombie = cluster.processes["processor"].pid
    os.kill(zombie, signal.SIGSTOP)
    try:
        # Past the 10 s session timeout the other processor owns every partition and runs these (and the
        # stopped one's waiting executions) on; their HTTP results arrive meanwhile.
        await asyncio.sleep(14)
        await asyncio.gather(*(start(phone()) for _ in range(EXECUTIONS // 2)))
    finally:
        os.kill(zombie, signal.SIGCONT)
    await asyncio.to_thread(cluster.wait_ready, "processor", 120.0)
    await _all_end_exactly(api, messages_api, flow_sid, sids, work)
