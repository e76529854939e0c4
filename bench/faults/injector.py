"""Faults on a seeded random schedule, one at a time, each recorded with when it began and ended.

Kinds: ``kill`` (SIGKILL a service replica, restart it after a short pause), ``kill_broker`` (SIGKILL a
Kafka node that is not the active controller, restart it), ``kill_controller`` (the active controller),
``pause`` (SIGSTOP a processor replica for longer than the 10 s session timeout, then SIGCONT: a zombie
that wakes up after its partitions moved), ``rebalance`` (a third replica of the processor, http-worker or
scheduler joins, stays a while, and leaves). One fault at a time: at most one Kafka node down
(``min.insync.replicas=2``) and one replica of a service, so the cluster as a whole stays available.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .topology import SERVICES, Topology

__all__ = ["Fault", "Injector", "plan"]

FAULT_KINDS = ("kill", "kill_broker", "kill_controller", "pause", "rebalance")


@dataclass
class Fault:
    kind: str
    target: str
    at: float = 0.0  # seconds since the load started
    ended: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def plan(rng: random.Random, replicas: int, quick: bool) -> list[Fault]:
    """One round: every service replica killed once (quick: one replica per service), a broker, the controller,
    a zombie processor and a rebalance, in a seeded random order."""
    kills = [f"{name}-{n}" for name in SERVICES for n in range(replicas)]
    if quick:
        kills = [f"{name}-{rng.randrange(replicas)}" for name in SERVICES]
    faults = [Fault("kill", label) for label in kills]
    faults += [Fault("kill_broker", "node"), Fault("kill_controller", "controller"),
               Fault("pause", f"processor-{rng.randrange(replicas)}"),
               Fault("rebalance", rng.choice(("processor", "http_worker", "scheduler")))]
    rng.shuffle(faults)
    return faults


@dataclass
class Injector:
    topology: Topology
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    done: list[Fault] = field(default_factory=list)

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def run(self, faults: list[Fault], gap: tuple[float, float]) -> None:
        for fault in faults:
            await asyncio.sleep(self.rng.uniform(*gap))
            fault.at = self.now()
            await getattr(self, "_" + fault.kind)(fault)
            fault.ended = self.now()
            self.done.append(fault)

    async def _kill(self, fault: Fault) -> None:
        self.topology.kill(fault.target)
        down = self.rng.uniform(0.2, 3.0)
        fault.detail["down_seconds"] = round(down, 2)
        await asyncio.sleep(down)
        self.topology.start_replica(fault.target)
        await asyncio.to_thread(self.topology.services.wait_ready, fault.target, 240)

    async def _kill_broker(self, fault: Fault) -> None:
        controller = self.topology.kafka.active_controller()
        choices = [n for n in range(len(self.topology.kafka.nodes)) if n != controller]
        await self._broker(fault, self.rng.choice(choices))

    async def _kill_controller(self, fault: Fault) -> None:
        controller = self.topology.kafka.active_controller()
        await self._broker(fault, controller if controller is not None else 0)

    async def _broker(self, fault: Fault, index: int) -> None:
        fault.target = f"kafka-node-{index + 1}"
        self.topology.kafka.kill(index)
        down = self.rng.uniform(2.0, 10.0)
        fault.detail["down_seconds"] = round(down, 2)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.topology.kafka.restart, index, 240)
        fault.detail["new_controller"] = self.topology.kafka.active_controller()

    async def _pause(self, fault: Fault) -> None:
        stopped = self.rng.uniform(12.0, 20.0)  # > the 10 s session timeout: its partitions move meanwhile
        fault.detail["stopped_seconds"] = round(stopped, 2)
        self.topology.pause(fault.target)
        await asyncio.sleep(stopped)
        self.topology.resume(fault.target)
        # The zombie wakes up believing it owns its partitions; wait until it has rejoined and is ready.
        await asyncio.to_thread(self.topology.services.wait_ready, fault.target, 240)

    async def _rebalance(self, fault: Fault) -> None:
        label = f"{fault.target}-{self.topology.replicas}"
        fault.target = label
        self.topology.start_replica(label)
        await asyncio.to_thread(self.topology.services.wait_ready, label, 240)
        stay = self.rng.uniform(5.0, 15.0)
        fault.detail["stayed_seconds"] = round(stay, 2)
        await asyncio.sleep(stay)
        self.topology.stop_replica(label)  # the group rebalances again as it leaves

    def report(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.done]
