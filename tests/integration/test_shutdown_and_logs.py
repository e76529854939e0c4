"""Every service: /livez answers, logs are one JSON object per line with flow and execution ids, SIGTERM is a clean exit.

Uses a cluster of its own (the session cluster must keep running for the other tests).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.cluster import SERVICES, Cluster
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    cluster = Cluster.local(Path(tempfile.mkdtemp(prefix="switchboard-shutdown-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _get(url: str, auth: tuple[str, str] | None = None, data: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=None if data is None else urllib.parse.urlencode(data).encode())
    if auth:
        import base64
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, orjson.loads(response.read())


def test_each_service_answers_livez(own_cluster: Cluster) -> None:
    for name in SERVICES:
        status, body = _get(f"http://127.0.0.1:{own_cluster.ports[name]}/livez")
        assert (status, body["status"]) == (200, "ok"), name


def test_log_lines_are_json_and_an_ended_execution_is_logged_with_its_ids(own_cluster: Cluster) -> None:
    s = Settings.from_env(own_cluster.env)
    auth, base = (s.account_sid, s.auth_token), own_cluster.ingress_url
    definition = (ROOT / "devtools" / "demo_flow.json").read_text()
    _, flow = _get(f"{base}/v2/Flows", auth, {"FriendlyName": "logs", "Status": "published", "Definition": definition})
    _, execution = _get(f"{base}/v2/Flows/{flow['sid']}/Executions", auth, {
        "To": "+15550001111", "From": "+15559990000", "Parameters": json.dumps({"name": "Ann", "url": f"{base}/livez"})})
    logs = own_cluster.workdir / "logs"
    deadline, ended = time.monotonic() + 30, []
    while not ended and time.monotonic() < deadline:
        lines = [json.loads(line) for line in (logs / "processor.log").read_text().splitlines()
                 if line.startswith("{")]
        ended = [line for line in lines if line["msg"] == "execution ended"
                 and line.get("execution_sid") == execution["sid"]]
        time.sleep(0.2)
    assert ended, "no 'execution ended' line for the execution"
    [line] = ended
    assert (line["service"], line["level"], line["flow_sid"], line["reason"]) == (
        "processor", "info", flow["sid"], "completed")
    assert line["steps"] == 5
    for name in SERVICES:  # every line of every service's output is one JSON object naming the service
        lines = (logs / f"{name}.log").read_text().splitlines()
        assert all(json.loads(text)["service"] == name.replace("_", "-") for text in lines), (name, lines[:5])


@pytest.mark.parametrize("name", ["ingress", "processor", "scheduler", "http_worker"])
def test_sigterm_stops_the_service_cleanly(own_cluster: Cluster, name: str) -> None:
    proc = own_cluster.processes[name]
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, (own_cluster.workdir / "logs" / f"{name}.log").read_text()[-3000:]
    own_cluster.processes.pop(name)
