"""Wait until a freshly started (or just disturbed) cluster has settled: every consumer group of the engine
stable with all its replicas as members, and every replica ready.

Why: replicas started together join their groups one after another, so a group rebalances several times in
its first seconds, and a replica's ``/readyz`` can say "ready" before it has even joined its group. Events
sent meanwhile wait for the partition's owner (up to a session timeout); the fault-free warm-up must not run
then, or what it measures is the start-up, not the engine at rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient

from services.event_streams.relay import GROUP_ID as EVENT_STREAMS_GROUP
from services.http_worker.service import GROUP_ID as HTTP_WORKER_GROUP
from shared.settings import Settings

__all__ = ["GroupState", "expected_groups", "unsettled", "wait_groups_stable"]


@dataclass(frozen=True)
class GroupState:
    group: str
    state: str  # Kafka's group state: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
    members: int


def expected_groups(settings: Settings, replicas: Mapping[str, int]) -> dict[str, int]:
    """Group id → how many members it must have, from the number of running replicas of each service."""
    return {
        "switchboard-processor": replicas.get("processor", 0),
        HTTP_WORKER_GROUP: replicas.get("http_worker", 0),
        EVENT_STREAMS_GROUP: replicas.get("http_worker", 0) if settings.event_streams else 0,
        settings.topic_prefix + "scheduler": replicas.get("scheduler", 0),
        # the shared PostgreSQL history copy is written by the ingress replicas as one group
        settings.topic_prefix + "history-writer": replicas.get("ingress", 0) if settings.history_store == "postgres" else 0,
    }


def unsettled(states: Iterable[GroupState], expected: Mapping[str, int]) -> list[str]:
    """What keeps the groups from being settled (empty: settled): a group not Stable, or with other than the
    expected number of members. Groups expected with 0 members are not checked."""
    seen = {s.group: s for s in states}
    problems = []
    for group, members in sorted(expected.items()):
        if members == 0:
            continue
        state = seen.get(group)
        if state is None:
            problems.append(f"{group}: not described")
        elif state.state != "Stable" or state.members != members:
            problems.append(f"{group}: {state.state} with {state.members} of {members} members")
    return problems


async def describe(admin: AIOKafkaAdminClient, groups: Iterable[str]) -> list[GroupState]:
    found = []
    for group in groups:  # one by one: the groups may have different coordinators
        for response in await admin.describe_consumer_groups([group]):
            for entry in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members[, authorized_operations])
                found.append(GroupState(str(entry[1]), str(entry[2]), len(entry[5])))
    return found


async def wait_groups_stable(bootstrap: str, expected: Mapping[str, int], timeout: float,
                             calm: float = 3.0) -> None:
    """Until every expected group has been Stable with its members for ``calm`` seconds (a late joiner starts
    another rebalance, so one Stable sample is not enough); TimeoutError naming what is not settled."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="faults-settle")
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        stable_since: float | None = None
        problems = ["not described yet"]
        while time.monotonic() < deadline:
            try:
                problems = unsettled(await describe(admin, [g for g, n in expected.items() if n]), expected)
            except Exception as exc:  # noqa: BLE001 - a coordinator moving (broker restart): sample again
                problems = [f"describe failed: {type(exc).__name__}: {exc}"]
            if problems:
                stable_since = None
            elif stable_since is None:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= calm:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"consumer groups not settled within {timeout}s: {problems}")
    finally:
        await admin.close()
