"""The ``switchboard`` CLI against a running cluster, through its entry point.

Most tests invoke the click command in-process (``CliRunner``: output captured,
not a terminal, so no colour); one runs the installed ``switchboard`` console
script as a subprocess.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from devtools.cluster import Cluster
from services.cli.main import cli
from shared.settings import Settings
from tests.conftest import APPOINTMENTS, FIXTURES

FLOW_FILE = APPOINTMENTS
ANSI = re.compile(r"\x1b\[")


class Person:
    """A local HTTP service for the skeleton flow: ``/person`` answers after ``delay`` or when released."""

    def __init__(self, hold: bool = False) -> None:
        self.release = threading.Event()
        if not hold:
            self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.release.wait(8)
                body = b'{"person": {"name": "bob", "age": 40}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def person() -> Iterator[Person]:
    p = Person()
    yield p
    p.close()


@pytest.fixture
def held_person() -> Iterator[Person]:
    p = Person(hold=True)
    yield p
    p.close()


@pytest.fixture
def switchboard(cluster: Cluster, settings: Settings) -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--url", cluster.ingress_url, "--account-sid", settings.account_sid,
                                   "--auth-token", settings.auth_token, *args], catch_exceptions=False)
    return invoke


def contact() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def imported_sid(result: Result) -> str:
    assert result.exit_code == 0, result.output
    match = re.search(r"(FW[0-9a-f]{32})", result.output)
    assert match, result.output
    return match.group(1)


def test_flows_import_export_round_trips_a_studio_export_and_import_with_flow_adds_a_revision(
        switchboard: Any, tmp_path: Path) -> None:
    name = f"appointments-{uuid.uuid4().hex[:8]}"
    result = switchboard("flows", "import", str(FLOW_FILE), "--name", name, "--message", "first import")
    sid = imported_sid(result)
    assert f"Imported {sid} '{name}': revision 1 (published)" in result.output
    assert "Webhook URL: http://127.0.0.1:" in result.output

    listed = switchboard("flows", "list")
    assert listed.exit_code == 0 and re.search(rf"{sid}\s+{name}\s+published\s+1\s", listed.output)

    exported = switchboard("flows", "export", name)  # by friendly name
    assert exported.exit_code == 0 and json.loads(exported.output) == json.loads(FLOW_FILE.read_text())

    changed = json.loads(FLOW_FILE.read_text())
    changed["description"] = "edited"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(changed))
    result = switchboard("flows", "import", str(edited), "--flow", sid, "--status", "draft", "--message", "edit")
    assert result.exit_code == 0 and f"Updated {sid} '{name}': revision 2 (draft)" in result.output
    revisions = switchboard("flows", "revisions", sid)
    assert re.search(r"2\s+draft\s+.*edit", revisions.output) and re.search(r"1\s+published\s+.*first import",
                                                                             revisions.output)
    out = tmp_path / "out.json"
    assert switchboard("flows", "export", sid, "--revision", "LatestPublished", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == json.loads(FLOW_FILE.read_text())
    assert json.loads(switchboard("flows", "export", sid).output)["description"] == "edited"


def test_flows_validate_prints_each_problem_with_its_property_path_and_exits_1(switchboard: Any, tmp_path: Path) -> None:
    good = switchboard("flows", "validate", str(FLOW_FILE))
    assert good.exit_code == 0 and good.output.strip().endswith("valid")
    broken = json.loads(FLOW_FILE.read_text())
    broken["states"][1]["transitions"][0]["next"] = "no_such_widget"
    broken["states"][2]["name"] = broken["states"][1]["name"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    bad = switchboard("flows", "validate", str(path))
    assert bad.exit_code == 1
    assert "invalid — error 81022: Flow definition validation failed" in bad.output
    assert re.search(r"^  #/states/1/transitions/0/next: .*no_such_widget", bad.output, re.M)
    assert re.search(r"^  #/states/2/name: .*duplicate", bad.output, re.M)


def test_run_starts_an_execution_and_prints_each_step_until_it_ends(switchboard: Any, person: Person) -> None:
    sid = imported_sid(switchboard("flows", "import", str(FIXTURES / "skeleton_flow.json"), "--name",
                                   f"skeleton-{uuid.uuid4().hex[:8]}"))
    result = switchboard("run", sid, "--to", contact(), "--from", "+15550001111", "--param", "name=Ann",
                         "--param", f"base_url={person.url}", "--timeout", "30")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.match(r"Started FN[0-9a-f]{32} \(revision 1\) for \+1555", lines[0])
    assert [re.sub(r"\s+", " ", line.strip()) for line in lines[1:6]] == [
        "1 Trigger ─incomingRequest→ set_greeting (trigger)",
        "2 set_greeting ─next→ lookup (set-variables)",
        "3 lookup ─success→ check (make-http-request)",
        "4 check ─match→ mark_bob (split-based-on)",
        "5 mark_bob ─next→ Ended (set-variables)",
    ]
    assert lines[6] == "Ended after 5 steps"
    assert '"result": "bob 40"' in result.output
    assert not ANSI.search(result.output)  # not a terminal: no colour, no progress line


def test_executions_list_show_end_and_steps_show(switchboard: Any, held_person: Person) -> None:
    sid = imported_sid(switchboard("flows", "import", str(FIXTURES / "skeleton_flow.json"), "--name",
                                   f"held-{uuid.uuid4().hex[:8]}"))
    started = switchboard("run", sid, "--to", contact(), "--from", "+15550001111", "--no-follow",
                          "--parameters", json.dumps({"name": "Eve", "base_url": held_person.url}))
    execution = re.search(r"(FN[0-9a-f]{32})", started.output).group(1)  # type: ignore[union-attr]

    listed = switchboard("executions", "list", sid)
    assert listed.exit_code == 0 and re.search(rf"{execution}\s+active\s+\+1555\d+\s+1\s", listed.output)
    assert "SID" in listed.output.splitlines()[0]
    assert execution not in switchboard("executions", "list", sid, "--status", "ended").output

    shown = switchboard("executions", "show", sid, execution)
    assert shown.exit_code == 0 and re.search(r"Status:\s+active", shown.output)
    assert '"greeting": "Hello Eve"' in shown.output

    ended = switchboard("executions", "end", sid, execution)
    assert ended.exit_code == 0 and ended.output.strip() == f"{execution} ended"
    assert execution in switchboard("executions", "list", sid, "--status", "ended").output

    steps = switchboard("steps", "show", sid, execution, "--step-context")
    assert steps.exit_code == 0, steps.output
    lines = steps.output.splitlines()
    assert lines[0] == f"{execution}  ended  2 steps"
    assert re.split(r"\s{2,}", lines[1]) == ["#", "WIDGET", "EVENT", "NEXT", "TYPE", "STARTED"]
    assert re.split(r"\s{2,}", lines[2])[:5] == ["1", "Trigger", "incomingRequest", "set_greeting", "trigger"]
    assert re.split(r"\s{2,}", lines[3])[:5] == ["2", "set_greeting", "next", "lookup", "set-variables"]
    assert "Step 2 set_greeting" in steps.output and "Context:" in steps.output
    assert '"variables": {' in steps.output


def test_errors_are_one_line_on_stderr_with_exit_status_1(switchboard: Any) -> None:
    result = switchboard("flows", "export", "FW" + "0" * 32)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: error 20404: ")
    missing = switchboard("flows", "export", "no such flow name")
    assert missing.exit_code == 1 and "no flow named 'no such flow name'" in missing.stderr


def test_colour_only_when_asked_or_on_a_terminal(switchboard: Any) -> None:
    plain = switchboard("flows", "list")
    coloured = switchboard("--color", "flows", "list")
    assert plain.exit_code == coloured.exit_code == 0
    assert not ANSI.search(plain.output) and ANSI.search(coloured.output)


def test_simulate_delegates_to_the_twilio_simulator(switchboard: Any, tmp_path: Path) -> None:
    pytest.importorskip("devtools.simulator")
    definition = {
        "description": "say hello", "initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
        "states": [
            {"name": "Trigger", "type": "trigger", "properties": {},
             "transitions": [{"event": "incomingCall", "next": "hello"}, {"event": "incomingMessage"},
                             {"event": "incomingRequest"}]},
            {"name": "hello", "type": "say-play", "properties": {"say": "Hello from the CLI test"},
             "transitions": [{"event": "audioComplete"}]},
        ],
    }
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(definition))
    sid = imported_sid(switchboard("flows", "import", str(path), "--name", f"hello-{uuid.uuid4().hex[:8]}"))
    result = switchboard("simulate", "call", sid, "--from", contact())
    assert result.exit_code == 0, result.output
    assert "Hello from the CLI test" in result.output


def test_the_installed_console_script_runs(cluster: Cluster, settings: Settings) -> None:
    script = shutil.which("switchboard", path=str(Path(sys.executable).parent))
    assert script is not None, "pip install -e . registers the switchboard console script"
    result = subprocess.run([script, "--url", cluster.ingress_url, "--account-sid", settings.account_sid,
                             "--auth-token", settings.auth_token, "flows", "validate", str(FLOW_FILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{FLOW_FILE}: valid"


def test_on_a_terminal_run_shows_colour_and_a_waiting_line_it_erases(cluster: Cluster, settings: Settings) -> None:
    import os
    import pty

    held = Person(hold=True)
    threading.Timer(1.5, held.release.set).start()  # the HTTP step takes 1.5 s: long enough to show "waiting"
    try:
        flow = CliRunner().invoke(cli, ["--url", cluster.ingress_url, "--account-sid", settings.account_sid,
                                        "--auth-token", settings.auth_token, "flows", "import",
                                        str(FIXTURES / "skeleton_flow.json"), "--name", f"tty-{uuid.uuid4().hex[:8]}"])
        sid = imported_sid(flow)
        script = shutil.which("switchboard", path=str(Path(sys.executable).parent))
        assert script is not None
        primary, secondary = pty.openpty()
        proc = subprocess.Popen([script, "--url", cluster.ingress_url, "--account-sid", settings.account_sid,
                                 "--auth-token", settings.auth_token, "run", sid, "--to", contact(),
                                 "--from", "+15550001111", "--param", f"base_url={held.url}", "--interval", "0.1"],
                                stdout=secondary, stderr=secondary, close_fds=True)
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=60) == 0
        os.close(primary)
    finally:
        held.close()
    output = b"".join(chunks).decode()
    assert ANSI.search(output), "colour on a terminal"
    assert "… waiting" in output and "\r\x1b[K" in output
    assert "Ended after 5 steps" in output


def test_flows_test_users_set_show_clear_and_flows_delete(switchboard: Any) -> None:
    sid = imported_sid(switchboard("flows", "import", str(FLOW_FILE), "--name", f"tu-{uuid.uuid4().hex[:8]}"))
    assert switchboard("flows", "test-users", sid).output.strip() == "No test users."
    assert switchboard("flows", "test-users", sid, "+15550000001", "+15550000002").output.split() == [
        "+15550000001", "+15550000002"]
    assert switchboard("flows", "test-users", sid).output.split() == ["+15550000001", "+15550000002"]
    assert switchboard("flows", "test-users", sid, "--clear").output.strip() == "No test users."
    deleted = switchboard("flows", "delete", sid, "--yes")
    assert deleted.exit_code == 0 and deleted.output.strip() == f"Deleted {sid}"
    assert switchboard("flows", "export", sid).exit_code == 1


def test_simulate_help_names_the_switchboard_command_not_the_python_module(switchboard: Any) -> None:
    result = switchboard("simulate", "--help")
    assert result.exit_code == 0
    assert result.output.startswith("usage: switchboard simulate ")
    assert "python -m devtools.simulator" not in result.output
