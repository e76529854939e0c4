"""The Grafana dashboard and its provisioning: generated, consistent, and only about metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import shared.metrics  # noqa: F401 - registers every Switchboard metric
from devtools.dashboard import DASHBOARD_PATH, DATASOURCE_UID, render

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
# Series that come from Prometheus itself or from prometheus_client's default process collector.
EXTERNAL = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}


def _exported_names() -> set[str]:
    names = set(EXTERNAL)
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
        if metric.type == "counter":
            names.add(metric.name + "_total")
        if metric.type == "histogram":
            names.update(metric.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        if metric.type == "info":
            names.add(metric.name + "_info")
    return names


def _board() -> dict:
    return json.loads(DASHBOARD_PATH.read_text())


def test_the_committed_dashboard_is_what_the_generator_produces() -> None:
    assert DASHBOARD_PATH.read_text() == render(), "run: python -m devtools.dashboard > " + str(DASHBOARD_PATH)


def test_every_panel_query_names_only_metrics_switchboard_exports() -> None:
    exported = _exported_names()
    functions = {"sum", "rate", "max", "by", "histogram_quantile", "clamp_min", "vector", "or", "le"}
    for panel in _board()["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([a-z_, ]*\)\s*\(", " ", target["expr"])
            words = set(re.findall(r"[a-z_][a-z0-9_]*", expr)) - functions
            unknown = {w for w in words if w not in exported and w.startswith(("switchboard_", "process_", "up"))}
            assert not unknown, (panel["title"], unknown)
            assert re.search(r"\b(switchboard_[a-z_]+|up|process_[a-z_]+)\b", target["expr"]), target["expr"]


def test_the_dashboard_covers_the_golden_signals_of_every_service_and_of_the_flows() -> None:
    exprs = " ".join(t["expr"] for p in _board()["panels"] for t in p.get("targets", []))
    for metric in ("switchboard_executions_started_total", "switchboard_executions_ended_total",
                   "switchboard_webhook_twiml_seconds_bucket", "switchboard_http_worker_requests_total",
                   "switchboard_http_worker_request_duration_seconds_bucket", "switchboard_kafka_consumer_lag",
                   "switchboard_timers_pending", "switchboard_timers_fired_total", "switchboard_timer_lateness_seconds_bucket",
                   "switchboard_ingress_requests_total", "switchboard_ingress_request_duration_seconds_bucket",
                   "switchboard_steps_total", "switchboard_kafka_produce_errors_total", "process_cpu_seconds_total"):
        assert metric in exprs, metric
    assert "histogram_quantile(0.5, sum by (le) (rate(switchboard_webhook_twiml_seconds_bucket" in exprs
    assert "histogram_quantile(0.99, sum by (le) (rate(switchboard_webhook_twiml_seconds_bucket" in exprs


def test_every_panel_uses_the_provisioned_datasource_and_has_a_unique_id() -> None:
    board = _board()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["description"], panel["title"]
        assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_the_provisioned_datasource_has_the_uid_the_panels_reference() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_the_dashboard_provider_loads_the_folder_compose_mounts_the_dashboards_into() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "switchboard.yml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
