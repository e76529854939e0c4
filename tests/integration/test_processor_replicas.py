"""Two processor replicas share the event partitions: executions on both run to their ends and read back over REST.

A second processor joins the session cluster's consumer group (its own metrics port); contacts spread over the
partitions, so both replicas run executions. The reads go through the one ingress, whatever processor ran them:
the read model comes from the history topic, not from the processors' tables.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from tests.conftest import load_fixture

EXECUTIONS = 24
EXPECTED = [("incomingRequest", "Trigger", "set_greeting"), ("next", "set_greeting", "lookup"),
            ("success", "lookup", "check"), ("match", "check", "mark_bob"), ("next", "mark_bob", "Ended")]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_ready(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not _ready(port):
        assert time.monotonic() < deadline, f"processor on {port} not ready (rebalance not over)"
        time.sleep(0.2)


def _handled(port: int) -> float:
    """Events this processor handled (switchboard_processor_events_total, result="handled", all kinds)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(
        r'^switchboard_processor_events_total\{[^}]*result="handled"[^}]*\} (\S+)$', text, re.M))


@pytest.fixture(scope="module")
def second_processor(cluster: Cluster) -> Iterator[int]:
    port = free_port()
    cluster.ports["processor-2"] = port
    cluster.start_service("processor", label="processor-2", extra_env={"SWITCHBOARD_PROCESSOR_PORT": str(port)})
    try:
        _wait_ready(port)
        _wait_ready(cluster.ports["processor"])  # the group has rebalanced: both own partitions
        yield port
    finally:
        cluster.stop_service("processor-2")
        cluster.ports.pop("processor-2", None)
        _wait_ready(cluster.ports["processor"])  # leave the cluster as the next tests expect it


async def test_executions_spread_over_two_processors_all_end_exactly_and_read_back(
        api: Any, bob_service: str, cluster: Cluster, second_processor: int) -> None:
    base = bob_service
    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"), name="two processors")
    # The group has rebalanced once the new replica handles events: run single executions until it does.
    deadline = asyncio.get_running_loop().time() + 90
    while _handled(second_processor) == 0:
        assert asyncio.get_running_loop().time() < deadline, "the second processor never got partitions"
        warm = await api.start(flow_sid, params={"name": "Ann", "base_url": base})
        await api.wait_ended(flow_sid, warm["sid"], timeout=60)
    await asyncio.to_thread(_wait_ready, cluster.ports["processor"])
    before = {port: _handled(port) for port in (cluster.ports["processor"], second_processor)}

    contacts = [f"+1555{time.time_ns() % 10**6:06d}{n:02d}" for n in range(EXECUTIONS)]
    created = await asyncio.gather(*(api.start(flow_sid, to=c, params={"name": "Ann", "base_url": base})
                                     for c in contacts))
    for execution in created:
        ended = await api.wait_ended(flow_sid, execution["sid"], timeout=60)
        assert ended["status"] == "ended"
        steps = await api.steps(flow_sid, execution["sid"])
        assert [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps] == EXPECTED
    handled = {port: _handled(port) - before[port] for port in before}
    assert all(count > 0 for count in handled.values()), handled  # both replicas did part of the work
