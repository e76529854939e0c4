"""What the fault suite runs: a 3-node Kafka cluster and 2 replicas of every service, each by its own PID.

Replicas are labelled ``<service>-<n>`` (``processor-0``…); ingress replicas own distinct reply partitions
(``SWITCHBOARD_INGRESS_INSTANCE``) and ports, every replica has its own metrics port. Extra replicas
(``<service>-2``) join and leave to force rebalances.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devtools.cluster import Cluster
from devtools.kafka_broker import _terminate, free_port
from devtools.kafka_cluster import KafkaCluster

__all__ = ["SERVICES", "Topology"]

SERVICES = ("processor", "http_worker", "scheduler", "ingress")
_PORT_VARIABLE = {"processor": "SWITCHBOARD_PROCESSOR_PORT", "http_worker": "SWITCHBOARD_HTTP_WORKER_PORT",
                  "scheduler": "SWITCHBOARD_SCHEDULER_PORT", "ingress": "SWITCHBOARD_INGRESS_PORT"}


@dataclass
class Topology:
    workdir: Path
    kafka: KafkaCluster
    services: Cluster
    public_port: int
    replicas: int = 2
    paused: set[str] = field(default_factory=set)

    @classmethod
    def local(cls, workdir: Path, twilio_api_base: str, replicas: int = 2,
              extra_env: dict[str, str] | None = None) -> Topology:
        kafka = KafkaCluster.local(workdir / "kafka")
        public_port = free_port()
        services = Cluster(workdir, {
            "SWITCHBOARD_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "SWITCHBOARD_REPLICATION_FACTOR": "3",
            "SWITCHBOARD_PUBLIC_BASE_URL": f"http://127.0.0.1:{public_port}",
            "SWITCHBOARD_OUTBOUND_ALLOW": "127.0.0.0/8,::1/128",
            "SWITCHBOARD_TWILIO_API_BASE": twilio_api_base,
            "SWITCHBOARD_LOG_JSON": "true",
            "SWITCHBOARD_DATA_DIR": str((workdir / "data").resolve()),
            "SWITCHBOARD_LAG_SAMPLE_SECONDS": "60",
            **(extra_env or {}),
        })
        return cls(workdir, kafka, services, public_port, replicas)

    @property
    def env(self) -> dict[str, str]:
        return self.services.env

    def labels(self) -> list[str]:
        return [f"{name}-{n}" for name in SERVICES for n in range(self.replicas)]

    def ingress_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.services.ports[f'ingress-{n}']}" for n in range(self.replicas)]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kafka.start()
        self.services.create_topics()
        for label in self.labels():
            self.start_replica(label)
        for label in self.labels():
            self.services.wait_ready(label, 180)

    def start_replica(self, label: str) -> subprocess.Popen[bytes]:
        name, n = label.rsplit("-", 1)
        port = self.services.ports.get(label) or free_port()  # a restarted replica keeps its port
        self.services.ports[label] = port
        extra = {_PORT_VARIABLE[name]: str(port)}
        if name == "ingress":
            extra["SWITCHBOARD_INGRESS_INSTANCE"] = n
        if name == "processor":  # its own disk, kept across restarts (a StatefulSet's volume): RocksDB reopened
            extra["SWITCHBOARD_PROCESSOR_DATA_DIR"] = str((self.workdir / "data" / label).resolve())
        return self.services.start_service(name, label=label, extra_env=extra)

    def kill(self, label: str) -> None:
        """SIGKILL one replica by its PID (and reap it)."""
        proc = self.services.processes.pop(label, None)
        if proc is None:
            return
        if label in self.paused:  # a stopped process dies of SIGKILL too, but say it
            self.paused.discard(label)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def pause(self, label: str) -> None:
        os.kill(self.services.processes[label].pid, signal.SIGSTOP)
        self.paused.add(label)

    def resume(self, label: str) -> None:
        os.kill(self.services.processes[label].pid, signal.SIGCONT)
        self.paused.discard(label)

    def stop_replica(self, label: str) -> None:
        """SIGTERM (a graceful leave, as a scale-down does)."""
        self.services.stop_service(label)

    def stop(self) -> None:
        for label in list(self.paused):
            self.resume(label)
        for label, proc in list(self.services.processes.items()):
            _terminate(proc.pid, 15)
            self.services.processes.pop(label, None)
        self.kafka.stop()
