"""A real single-node Apache Kafka broker (KRaft) for development and tests.

The broker's jars come from Maven Central (``devtools/kafka/pom.xml`` pins the
release) into a cache folder; the broker runs as a JVM child process listening
on 127.0.0.1 and is stopped by its own PID, never by name.

Usage from a shell::

    python -m devtools.kafka_broker fetch
    python -m devtools.kafka_broker start --dir .run/kafka --port 9092
    python -m devtools.kafka_broker stop --dir .run/kafka
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KAFKA_VERSION", "KafkaBroker", "cluster_id", "fetch_jars", "free_port"]

KAFKA_VERSION = "3.9.1"
_HERE = Path(__file__).resolve().parent
_POM = _HERE / "kafka" / "pom.xml"
_DEFAULT_CACHE = Path(os.environ.get("SWITCHBOARD_CACHE", Path.home() / ".cache" / "switchboard"))

_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_jars(cache: Path = _DEFAULT_CACHE) -> Path:
    """Download the broker's runtime classpath with Maven once; return the folder."""
    lib = cache / f"kafka-{KAFKA_VERSION}" / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    lib.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn", "-q", "-B", "-f", str(_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    marker.write_text(KAFKA_VERSION)
    return lib


@dataclass
class KafkaBroker:
    """One KRaft broker+controller in ``workdir`` on 127.0.0.1:``port``."""

    workdir: Path
    port: int
    controller_port: int
    cache: Path = _DEFAULT_CACHE
    heap: str = "512m"
    #: Cluster membership (devtools/kafka_cluster.py sets these for its 3 nodes; the defaults are one node).
    node_id: int = 1
    voters: str = ""  # controller.quorum.voters; empty: this node alone
    cluster_id: str = ""  # empty: a fresh random id at the first format
    replication: int = 1  # internal topics' replication factor, default.replication.factor
    min_insync: int = 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "kafka.pid"

    def _java(self, lib: Path) -> list[str]:
        return [
            "java", "-Xms128m", f"-Xmx{self.heap}", "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
            "-cp", f"{lib}/*",
        ]

    def _write_config(self) -> Path:
        logs = self.workdir / "data"
        props = self.workdir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    f"controller.quorum.voters={self.voters or f'1@127.0.0.1:{self.controller_port}'}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={logs}",
                    "num.partitions=4",
                    "auto.create.topics.enable=true",
                    f"offsets.topic.replication.factor={self.replication}",
                    "offsets.topic.num.partitions=8",
                    f"transaction.state.log.replication.factor={self.replication}",
                    f"transaction.state.log.min.isr={self.min_insync}",
                    *([f"default.replication.factor={self.replication}", f"min.insync.replicas={self.min_insync}",
                       "unclean.leader.election.enable=false"] if self.replication > 1 else []),
                    "group.initial.rebalance.delay.ms=0",
                    "log.cleaner.backoff.ms=1000",
                    # Experiments (benchmarks): extra server properties, separated by ";".
                    *[line.strip() for line in os.environ.get("SWITCHBOARD_KAFKA_EXTRA_PROPS", "").split(";")
                      if line.strip()],
                    "",
                ]
            )
        )
        (self.workdir / "log4j.properties").write_text(_LOG4J)
        return props

    def start(self, timeout: float = 90.0) -> None:
        """Format the log directory (first start only), start the JVM, wait until it answers."""
        lib = fetch_jars(self.cache)
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        if not (self.workdir / "data" / "meta.properties").exists():
            cluster_id = self.cluster_id or _cluster_id()
            subprocess.run(
                [*self._java(lib), "kafka.tools.StorageTool", "format",
                 "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
                check=True, stdout=subprocess.DEVNULL,
            )
        log = open(self.workdir / "kafka.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [*self._java(lib), "kafka.Kafka", str(props)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.pid_file.write_text(str(proc.pid))
        self._wait_ready(proc, timeout)

    @property
    def pid(self) -> int | None:
        """The running JVM's PID as recorded at start, or None."""
        return int(self.pid_file.read_text()) if self.pid_file.exists() else None

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        from kafka import KafkaAdminClient  # the design card's admin client
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {proc.returncode}; see {self.workdir / 'kafka.log'}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                try:
                    admin.describe_cluster()
                finally:
                    admin.close()
                return
            except (KafkaError, OSError, ValueError):
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"Kafka did not answer on {self.bootstrap} within {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker by the PID recorded at start; SIGKILL after ``timeout``."""
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text())
        _terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished:
                return
        except ChildProcessError:  # not our child: poll for existence instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cluster_id() -> str:
    """A fresh KRaft cluster id."""
    return _cluster_id()


def _cluster_id() -> str:
    # Kafka wants a base64url-encoded 16-byte UUID without padding.
    import base64

    # An id starting with "-" would be read as an option by StorageTool's argument parser.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if cluster_id[0].isalnum():
            return cluster_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka_broker")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch")
    for name in ("start", "stop"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, required=True)
        p.add_argument("--port", type=int, default=9092)
        p.add_argument("--controller-port", type=int, default=9093)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(fetch_jars())
        return 0
    broker = KafkaBroker(args.dir, args.port, args.controller_port)
    if args.command == "start":
        broker.start()
        print(f"Kafka {KAFKA_VERSION} listening on {broker.bootstrap} (pid {broker.pid_file.read_text()})")
    else:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
