"""Prometheus and promtool from Debian's ``prometheus`` package, extracted into a cache folder.

The package is fetched with ``apt-get download prometheus`` (apt checks the
archive's signatures) and unpacked with ``dpkg -x`` — never installed, so no
service is registered or started. Only the two binaries are kept, in
``$SWITCHBOARD_CACHE/prometheus`` (default ``~/.cache/switchboard/prometheus``).

``apt-get download`` needs the package lists; on a fresh machine whose lists
are empty, root runs ``apt-get update`` first (a non-root user must ask root
for that once, or point ``SWITCHBOARD_PROMETHEUS_BIN`` at a folder holding
``prometheus`` and ``promtool``).

    python -m devtools.prometheus_deb fetch     # prints the folder holding the binaries
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["fetch", "prometheus_binary", "promtool_binary"]

_DEFAULT_CACHE = Path(os.environ.get("SWITCHBOARD_CACHE", Path.home() / ".cache" / "switchboard"))
_BINARIES = ("prometheus", "promtool")


def _apt_download(workdir: Path) -> Path:
    """Download the .deb into ``workdir``; run ``apt-get update`` once if the lists are missing (root only)."""
    if shutil.which("apt-get") is None:
        raise RuntimeError("apt-get is not available: set SWITCHBOARD_PROMETHEUS_BIN to a folder with prometheus and "
                           "promtool (Debian's prometheus package)")
    attempt = subprocess.run(["apt-get", "download", "prometheus"], cwd=workdir, capture_output=True, text=True)
    if attempt.returncode != 0:
        if os.geteuid() != 0:
            raise RuntimeError(f"apt-get download prometheus failed (run 'apt-get update' as root once?): "
                               f"{attempt.stderr.strip()}")
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "download", "prometheus"], cwd=workdir, check=True, capture_output=True)
    debs = sorted(workdir.glob("prometheus_*.deb"))
    if not debs:
        raise RuntimeError("apt-get download prometheus produced no .deb")
    return debs[-1]


def _extract(deb: Path, target: Path) -> None:
    """``dpkg -x`` where dpkg exists; otherwise read the ar archive's data.tar.* with the standard library."""
    if shutil.which("dpkg") is not None:
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
        return
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise RuntimeError(f"{deb} is not a Debian package")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            member = target / name
            member.write_bytes(body)
            with tarfile.open(member) as archive:
                archive.extractall(target, filter="data")
            member.unlink()
            return
        pos += 60 + size + (size % 2)
    raise RuntimeError(f"{deb} has no data.tar member")


def fetch(cache: Path = _DEFAULT_CACHE) -> Path:
    """Return a folder holding ``prometheus`` and ``promtool``, downloading them on first use."""
    override = os.environ.get("SWITCHBOARD_PROMETHEUS_BIN")
    if override:
        return Path(override)
    folder = cache / "prometheus"
    if all((folder / name).is_file() for name in _BINARIES):
        return folder
    with tempfile.TemporaryDirectory(prefix="prometheus-deb-") as tmp:
        work = Path(tmp)
        deb = _apt_download(work)
        root = work / "root"
        root.mkdir()
        _extract(deb, root)
        staging = cache / "prometheus.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in _BINARIES:
            shutil.copy2(root / "usr" / "bin" / name, staging / name)
        (staging / "PACKAGE").write_text(deb.name + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # atomic: a half-extracted cache is never mistaken for a complete one
    return folder


def promtool_binary(cache: Path = _DEFAULT_CACHE) -> Path:
    return fetch(cache) / "promtool"


def prometheus_binary(cache: Path = _DEFAULT_CACHE) -> Path:
    return fetch(cache) / "prometheus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prometheus_deb")
    parser.add_argument("command", choices=("fetch",))
    parser.parse_args(argv)
    print(fetch())
    return 0


if __name__ == "__main__":
    sys.exit(main())
