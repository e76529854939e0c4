"""Start and stop a whole local Switchboard cluster: Kafka, topics and the four services.

Used by ``make run`` (fixed ports, ``.run/``) and by the integration tests
(free ports, a temporary folder). Every process is started by this module,
recorded by PID and stopped by that PID.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.kafka_broker import KafkaBroker, _terminate, free_port

__all__ = ["SERVICES", "Cluster"]

SERVICES = ("processor", "http_worker", "scheduler", "ingress")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cluster:
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    kafka_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    broker: KafkaBroker | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def local(cls, workdir: Path, fixed: bool = False, **overrides: str) -> Cluster:
        if fixed:
            kafka, ports = 9092, {"ingress": 8080, "processor": 8081, "http_worker": 8082, "scheduler": 8083}
        else:
            kafka, ports = free_port(), {name: free_port() for name in SERVICES}
        env = {
            "SWITCHBOARD_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
            "SWITCHBOARD_INGRESS_PORT": str(ports["ingress"]),
            "SWITCHBOARD_PROCESSOR_PORT": str(ports["processor"]),
            "SWITCHBOARD_HTTP_WORKER_PORT": str(ports["http_worker"]),
            "SWITCHBOARD_SCHEDULER_PORT": str(ports["scheduler"]),
            "SWITCHBOARD_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['ingress']}",
            # Local mode: flows may call services on this machine.
            "SWITCHBOARD_OUTBOUND_ALLOW": "127.0.0.0/8,::1/128",
            "SWITCHBOARD_LOG_JSON": "true",
            "SWITCHBOARD_DATA_DIR": str((workdir / "data").resolve()),
        }
        env.update(overrides)
        return cls(workdir, env, kafka, ports)

    @property
    def settings_env(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ingress']}"

    def start_kafka(self) -> None:
        self.broker = KafkaBroker(self.workdir / "kafka", self.kafka_port, free_port() if self.kafka_port != 9092 else 9093)
        self.broker.start()
        self.create_topics()

    def create_topics(self) -> None:
        from shared.settings import Settings
        from shared.topics import create_topics

        create_topics(Settings.from_env(self.env))

    def start_service(self, name: str, label: str | None = None,
                      extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``services.<name>``; ``label`` names an extra replica (with its own ports in ``extra_env``)."""
        label = label or name
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        # Each processor replica keeps its tables in its own folder, reused when it is restarted.
        env = {**os.environ, "SWITCHBOARD_PROCESSOR_DATA_DIR": str(self.workdir / "data" / label), **self.env,
               **(extra_env or {}), "PYTHONUNBUFFERED": "1", "SWITCHBOARD_WORKER_ID": f"{label}-{time.time_ns()}"}
        log = open(logs / f"{label}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[label] = proc
        (self.workdir / f"{label}.pid").write_text(str(proc.pid))
        return proc

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        url = f"http://127.0.0.1:{self.ports[name]}/readyz"
        deadline = time.monotonic() + timeout
        proc = self.processes.get(name)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.workdir / 'logs' / (name + '.log')}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready within {timeout}s; see {self.workdir / 'logs' / (name + '.log')}")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_kafka()
        for name in SERVICES:
            self.start_service(name)
        for name in SERVICES:
            self.wait_ready(name)

    def kill(self, name: str) -> None:
        """SIGKILL one service by its PID (crash tests)."""
        proc = self.processes.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_service(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            _terminate(proc.pid, 15)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_service(name)
        if self.broker is not None:
            self.broker.stop()


def _stop_from_pid_files(workdir: Path) -> None:
    for name in SERVICES:
        pid_file = workdir / f"{name}.pid"
        if pid_file.exists():
            _terminate(int(pid_file.read_text()), 15)
            pid_file.unlink()
    KafkaBroker(workdir / "kafka", 9092, 9093).stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster")
    parser.add_argument("command", choices=("start", "stop"))
    parser.add_argument("--dir", type=Path, default=ROOT / ".run")
    parser.add_argument("--free-ports", action="store_true",
                        help="pick free ports instead of 9092 and 8080-8083 (tests of `make run` use this)")
    args = parser.parse_args(argv)
    if args.command == "stop":
        _stop_from_pid_files(args.dir)
        print("Switchboard stopped.")
        return 0
    cluster = Cluster.local(args.dir, fixed=not args.free_ports, SWITCHBOARD_LOG_JSON="false")
    cluster.start()
    # Detach: the processes keep running after this command; ``make stop`` stops them by PID.
    from shared.settings import Settings

    s = Settings.from_env(cluster.env)
    base = cluster.ingress_url
    flow = ROOT / "devtools" / "demo_flow.json"
    auth = f"{s.account_sid}:{s.auth_token}"
    print(f"""
Switchboard is running (Kafka {cluster.broker.bootstrap if cluster.broker else '?'}; logs in {args.dir}/logs).

  Ingress:     {base}
  Console:     {base}/console/   (sign in with the account SID and auth token)
  Account SID: {s.account_sid}
  Auth token:  {s.auth_token}

Import the demo flow, start an execution (its HTTP widget calls the ingress's own /livez), read its steps:

  FLOW=$(curl -s -u {auth} {base}/v2/Flows \\
       --data-urlencode FriendlyName=demo --data-urlencode Status=published \\
       --data-urlencode Definition@{flow} | python3 -c 'import sys,json; print(json.load(sys.stdin)["sid"])')
  EXEC=$(curl -s -u {auth} {base}/v2/Flows/$FLOW/Executions \\
       --data-urlencode To=+15550001111 --data-urlencode From=+15559990000 \\
       --data-urlencode 'Parameters={{"name":"Ann","url":"{base}/livez"}}' \\
       | python3 -c 'import sys,json; print(json.load(sys.stdin)["sid"])')
  curl -s -u {auth} {base}/v2/Flows/$FLOW/Executions/$EXEC/Steps
  curl -s -u {auth} {base}/v2/Flows/$FLOW/Executions/$EXEC/Context

Stop everything with: make stop
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
