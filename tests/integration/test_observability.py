"""The dashboard works against the real thing: a real Prometheus scrapes a real cluster with the project's config.

Prometheus is Debian's binary (devtools.prometheus_deb), on 127.0.0.1 and a free
port, stopped by its PID. Its config is deploy/prometheus/prometheus.yml with
only the targets rewritten to the cluster's ports and a 1 s scrape interval;
the alert rules are the project's. After a few executions (REST-started ones
through a Make HTTP Request to a local server, and signed webhooks) every query
of every dashboard panel must return data through Prometheus's HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from twilio.request_validator import RequestValidator

from devtools.cluster import Cluster
from devtools.dashboard import DASHBOARD_PATH
from devtools.kafka_broker import _terminate, free_port
from devtools.prometheus_deb import prometheus_binary
from shared.settings import Settings
from tests.conftest import load_fixture

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
JOB_TO_SERVICE = {"switchboard-ingress": "ingress", "switchboard-processor": "processor",
                  "switchboard-http-worker": "http_worker", "switchboard-scheduler": "scheduler"}

#: Panels whose data cannot exist after a short test, and why. Everything else must return a finite value.
#: (None today: the traffic includes a call whose TwiML Redirect times out after 1 s, so timers fire.)
MAY_BE_EMPTY: dict[str, str] = {}

#: A call that is handed to TwiML which never returns: its 1 s redirect timeout fires a timer.
REDIRECT_FLOW: dict[str, Any] = {
    "initial_state": "Trigger", "description": "observability: a timer", "flags": {"allow_concurrent_calls": True},
    "states": [
        {"name": "Trigger", "type": "trigger", "properties": {},
         "transitions": [{"event": "incomingCall", "next": "away"}]},
        {"name": "away", "type": "add-twiml-redirect",
         "properties": {"url": "https://example.com/twiml", "method": "POST", "timeout": "1"},
         "transitions": [{"event": "return"}, {"event": "timeout"}, {"event": "fail"}]},
    ],
}


def _config_for(cluster: Cluster, workdir: Path) -> Path:
    """The project's scrape config with the cluster's ports; nothing else changed but the intervals."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(JOB_TO_SERVICE), jobs
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{cluster.ports[JOB_TO_SERVICE[job['job_name']]]}"]}]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [str(prometheus_binary()), f"--config.file={_config_for(cluster, workdir)}",
         f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus not ready")
            time.sleep(0.2)
        yield base
    finally:
        _terminate(proc.pid, 10)
        proc.wait(timeout=5)
        log.close()


def _panel_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD_PATH.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel.get("targets", [])]


async def _query(session: aiohttp.ClientSession, base: str, expr: str) -> list[dict[str, Any]]:
    # Grafana's $__rate_interval is at least four scrape intervals; 5 m spans the whole test's traffic.
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "15s")
    async with session.get(base + "/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


#: Series the first burst creates; the second burst waits until Prometheus has them.
BORN_IN_FIRST_BURST = (
    "switchboard_webhook_twiml_seconds_count", "switchboard_http_worker_request_duration_seconds_count",
    "switchboard_executions_started_total", "switchboard_executions_ended_total", "switchboard_steps_total",
    "switchboard_ingress_request_duration_seconds_count", "switchboard_processor_events_total",
)


async def _until_present(session: aiohttp.ClientSession, base: str, names: tuple[str, ...]) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        absent = [name for name in names if not await _query(session, base, name)]
        if not absent:
            return
        assert asyncio.get_running_loop().time() < deadline, f"never scraped: {absent}"
        await asyncio.sleep(0.5)


async def _lag_lines(session: aiohttp.ClientSession, settings: Settings) -> str:
    """Diagnostics for a failure: what each service's /metrics says about consumer lag."""
    lines = []
    for port in (settings.ingress_port, settings.http_worker_port, settings.scheduler_port):
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            lines += [line for line in (await response.text()).splitlines() if "lag" in line]
    return "\n".join(lines)


async def _webhook(api: Any, settings: Settings, flow_sid: str, params: dict[str, str]) -> str:
    url = f"{settings.public_base_url}/v1/Accounts/{settings.account_sid}/Flows/{flow_sid}"
    signature = RequestValidator(settings.auth_token).compute_signature(url, params)
    async with api.session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as response:
        text = await response.text()
        assert response.status == 200, text
        return text


async def _traffic(api: Any, settings: Settings, flow_sid: str, base: str, call_flow_sid: str) -> None:
    """REST-started executions (through the HTTP widget), a 404, a signed inbound-message webhook and a call
    whose TwiML Redirect times out (a timer fires)."""
    caller = f"+1555{time.time_ns() % 10**7:07d}"
    twiml = await _webhook(api, settings, call_flow_sid, {
        "CallSid": "CA" + f"{time.time_ns():032x}"[-32:], "From": caller, "To": "+15550001234",
        "CallStatus": "ringing", "Direction": "inbound", "AccountSid": settings.account_sid})
    assert "<Redirect" in twiml, twiml
    started = [await api.start(flow_sid, params={"name": "Ann", "base_url": base}) for _ in range(2)]
    for created in started:
        await api.wait_ended(flow_sid, created["sid"])
    code, _ = await api.get("/v2/Flows/FW00000000000000000000000000000000")
    assert code == 404
    await _webhook(api, settings, flow_sid, {"From": caller, "To": "+15550001234", "Body": "hi",
                                             "MessageSid": "SM" + "0" * 32, "AccountSid": settings.account_sid})


async def test_every_dashboard_panel_returns_data_from_a_real_prometheus(prometheus: str, api: Any, settings: Settings,
                                                                         bob_service: str) -> None:
    base = bob_service
    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"), name="observability")
    call_flow_sid = await api.create_flow(REDIRECT_FLOW, name="observability-call")

    queries = _panel_queries()
    assert len(queries) >= 20
    async with aiohttp.ClientSession() as session:
        # Two bursts: a labelled series is born at its first event, so rate() needs a later one. The second
        # burst starts once Prometheus has scraped the first.
        await _traffic(api, settings, flow_sid, base, call_flow_sid)
        await _until_present(session, prometheus, BORN_IN_FIRST_BURST)
        await _traffic(api, settings, flow_sid, base, call_flow_sid)
        missing: dict[str, str] = {}
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            missing = {}
            for title, expr in queries:
                result = await _query(session, prometheus, expr)
                if title in MAY_BE_EMPTY:
                    continue
                if not result or not _finite(result):
                    missing[f"{title}: {expr}"] = repr(result)[:200]
            if not missing or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(2)
        if missing:
            missing["services' lag lines"] = await _lag_lines(session, settings)
            for name in BORN_IN_FIRST_BURST:
                missing[name] = repr(await _query(session, prometheus, name + "[2m]"))[:600]
        assert not missing, "\n".join(f"{key}\n    {value}" for key, value in missing.items())

        async with session.get(prometheus + "/api/v1/targets") as response:
            targets = (await response.json())["data"]["activeTargets"]
        assert sorted((t["labels"]["job"], t["health"]) for t in targets) == sorted(
            (job, "up") for job in JOB_TO_SERVICE)

        async with session.get(prometheus + "/api/v1/rules") as response:
            groups = (await response.json())["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert {group["name"] for group in groups} == {"switchboard.recording", "switchboard.alerts"}
        assert all(rule["health"] == "ok" for rule in rules), [r for r in rules if r["health"] != "ok"]

        # The series behind the panels carry only bounded labels: no sid, phone number or URL anywhere.
        async with session.get(prometheus + "/api/v1/series", params={"match[]": '{__name__=~"switchboard_.+"}'}) as r:
            series = (await r.json())["data"]
        values = {value for labels in series for key, value in labels.items() if key not in ("__name__", "le")}
        assert not [v for v in values if v.startswith(("FW", "FN", "FT", "RQ", "+")) or "://" in v], sorted(values)
