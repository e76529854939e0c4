"""A real 3-node Apache Kafka cluster (KRaft) on 127.0.0.1 for the fault suite.

Three combined broker+controller nodes formatted with one cluster id, replication factor 3 and
``min.insync.replicas=2``: one node may die (even the active controller) and every ``acks=all`` write still
succeeds. Each node is a :class:`~devtools.kafka_broker.KafkaBroker` in its own folder, started, killed and
restarted by its own PID, never by name.

Usage from a shell::

    python -m devtools.kafka_cluster start --dir .run/kafka3
    python -m devtools.kafka_cluster stop --dir .run/kafka3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from devtools.kafka_broker import KafkaBroker, cluster_id, free_port

__all__ = ["KafkaCluster"]

NODES = 3


@dataclass
class KafkaCluster:
    """``nodes`` KRaft broker+controller nodes sharing one cluster id; ports chosen at construction."""

    workdir: Path
    nodes: list[KafkaBroker] = field(default_factory=list)

    @classmethod
    def local(cls, workdir: Path, count: int = NODES, heap: str = "384m") -> KafkaCluster:
        ports = [(free_port(), free_port()) for _ in range(count)]
        voters = ",".join(f"{n + 1}@127.0.0.1:{controller}" for n, (_, controller) in enumerate(ports))
        shared_id = _stored_cluster_id(workdir)
        nodes = [KafkaBroker(workdir / f"node-{n + 1}", port, controller, heap=heap, node_id=n + 1, voters=voters,
                             cluster_id=shared_id, replication=min(count, 3), min_insync=min(count - 1, 2) or 1)
                 for n, (port, controller) in enumerate(ports)]
        return cls(workdir, nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout: float = 120.0) -> None:
        """Start every node at once (a KRaft quorum needs a majority of voters before any node answers)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for done in [pool.submit(node.start, timeout) for node in self.nodes]:
                done.result()
        self._wait_all_registered(timeout)

    def _wait_all_registered(self, timeout: float) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                try:
                    if len(admin.describe_cluster()["brokers"]) == len(self.nodes):
                        return
                finally:
                    admin.close()
            except (KafkaError, OSError, ValueError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"not all {len(self.nodes)} Kafka nodes registered within {timeout}s")

    def kill(self, index: int) -> None:
        """SIGKILL one node by its PID (a crash: no controlled shutdown, no leadership hand-over)."""
        node = self.nodes[index]
        pid = node.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        node.pid_file.unlink(missing_ok=True)

    def restart(self, index: int, timeout: float = 120.0) -> None:
        self.nodes[index].start(timeout)

    def active_controller(self) -> int | None:
        """The index of the node the quorum follows as leader, read from a live node's quorum-state file."""
        for node in self.nodes:
            if node.pid is None:
                continue
            state = node.workdir / "data" / "__cluster_metadata-0" / "quorum-state"
            try:
                leader = int(json.loads(state.read_text()).get("leaderId", -1))
            except (OSError, ValueError):
                continue
            if leader > 0:
                return leader - 1
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _stored_cluster_id(workdir: Path) -> str:
    # Restarts of the same folder must keep the id the nodes were formatted with.
    marker = workdir / "cluster.id"
    if marker.exists():
        return marker.read_text().strip()
    workdir.mkdir(parents=True, exist_ok=True)
    fresh = cluster_id()
    marker.write_text(fresh)
    return fresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka_cluster")
    parser.add_argument("command", choices=("start", "stop"))
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "stop":
        for pid_file in sorted(args.dir.glob("node-*/kafka.pid")):
            KafkaBroker(pid_file.parent, 0, 0).stop()
        return 0
    cluster = KafkaCluster.local(args.dir)
    cluster.start()
    print(f"Kafka cluster of {len(cluster.nodes)} nodes on {cluster.bootstrap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
