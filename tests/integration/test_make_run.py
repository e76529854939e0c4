"""`make run` as a person uses it: start the local cluster, paste the printed curl commands, `make stop`.

Runs ``python -m devtools.cluster start`` (what ``make run`` runs) with ``--free-ports`` so it cannot collide
with anything on 9092/8080, executes the shell snippet it prints, and checks that ``stop`` leaves none of the
processes it started (services and broker, found by the PID files) alive.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _snippet(printed: str) -> str:
    """The shell commands the start banner prints, from ``FLOW=$(`` to the ``…/Context`` curl."""
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("FLOW=$("))
    last = next(i for i, line in enumerate(lines) if line.rstrip().endswith("/Context"))
    body = "\n".join(line.strip() for line in lines[first:last + 1])
    # Echo the two read commands' output on their own lines, so the test can parse each.
    return "set -euo pipefail\n" + body.replace("/Steps\n", "/Steps; echo\n") + "; echo"


def test_the_printed_curl_commands_work_and_stop_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = subprocess.run([sys.executable, "-m", "devtools.cluster", "start", "--dir", str(run_dir),
                              "--free-ports"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    pids = [int(p.read_text()) for p in [*run_dir.glob("*.pid"), *run_dir.glob("kafka/*.pid")]]
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        printed = started.stdout
        assert re.search(r"Account SID: AC[0-9a-f]{32}", printed) and "Auth token:" in printed
        assert len(pids) == 5, sorted(p.name for p in run_dir.rglob("*.pid"))  # four services + the broker
        assert all(_alive(pid) for pid in pids)

        shell = subprocess.run(["bash", "-c", _snippet(printed)], capture_output=True, text=True, timeout=120)
        assert shell.returncode == 0, (shell.stdout, shell.stderr)
        steps_text, context_text = [line for line in shell.stdout.splitlines() if line.strip()][-2:]
        steps, context = json.loads(steps_text), json.loads(context_text)
        assert steps["steps"], steps  # the demo execution has taken its steps
        assert {s["transitioned_from"] for s in steps["steps"]} >= {"Trigger"}
        assert context["context"]["flow"]["data"]["name"] == "Ann", context
        console = re.search(r"Console: +(\S+)", printed)
        assert console is not None, printed
        with urllib.request.urlopen(console.group(1), timeout=10) as page:  # the banner's console URL serves the page
            assert page.status == 200 and b'src="app.js"' in page.read()
    finally:
        stopped = subprocess.run([sys.executable, "-m", "devtools.cluster", "stop", "--dir", str(run_dir)],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert [pid for pid in pids if _alive(pid)] == []
