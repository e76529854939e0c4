"""Generate the Grafana dashboard ``deploy/grafana/dashboards/switchboard.json``.

The JSON is committed (Grafana provisions it as is); this module is its source,
so panels stay uniform and reviewable. ``tests/unit/deploy`` checks that the
committed file equals the output and that every query names a metric that
exists; ``tests/integration/test_observability.py`` checks that every query
returns data from a real Prometheus scraping a real cluster.

    python -m devtools.dashboard > deploy/grafana/dashboards/switchboard.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DASHBOARD_PATH", "DATASOURCE_UID", "dashboard", "render"]

DATASOURCE_UID = "switchboard-prometheus"
DASHBOARD_PATH = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards" / "switchboard.json"
_DS = {"type": "prometheus", "uid": DATASOURCE_UID}
_SERVICES = 'job=~"switchboard-.+"'
R = "$__rate_interval"


@dataclass
class Panel:
    title: str
    description: str  # the operator question the panel answers
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


def _rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    matchers = f"{{{selector}}}" if selector else ""
    return f"sum{grouping} (rate({metric}{matchers}[{R}]))"


def _quantile(q: float, metric: str, by: str = "") -> str:
    extra = f", {by}" if by else ""
    return f"histogram_quantile({q}, sum by (le{extra}) (rate({metric}_bucket[{R}])))"


def _ratio(metric: str, selector: str) -> str:
    """Share of ``metric`` matching ``selector``; 0 (not "no data") while nothing matches."""
    return f"({_rate(metric, selector=selector)} or vector(0)) / clamp_min({_rate(metric)}, 1e-9)"


_FAILED = 'reason=~"failed|loop_limit|step_limit"'

ROWS: list[tuple[str, list[Panel]]] = [
    ("Flows", [
        Panel("Executions started /s by trigger", "How much work arrives, and through which trigger?",
              [(_rate("switchboard_executions_started_total", "trigger"), "{{trigger}}")], "ops"),
        Panel("Executions ended /s by reason", "How do executions end: completed, ended by API, expired, "
              "failed, loop limit (81001), step limit (81000)?",
              [(_rate("switchboard_executions_ended_total", "reason"), "{{reason}}")], "ops"),
        Panel("Failed executions (ratio)", "Which share of executions fail or hit a limit?",
              [(_ratio("switchboard_executions_ended_total", _FAILED), "failed")], "percentunit"),
        Panel("Steps /s by widget type", "Which widgets do the work?",
              [(_rate("switchboard_steps_total", "widget_type"), "{{widget_type}}")], "ops"),
        Panel("Webhook → TwiML latency", "How long does a caller wait for TwiML (p50, p99)?",
              [(_quantile(0.5, "switchboard_webhook_twiml_seconds"), "p50"),
               (_quantile(0.99, "switchboard_webhook_twiml_seconds"), "p99")], "s"),
        Panel("Processor events /s by kind", "What does the processor handle, and does it drop anything?",
              [(_rate("switchboard_processor_events_total", "kind, result"), "{{kind}} {{result}}")], "ops"),
    ]),
    ("Ingress", [
        Panel("Ingress requests /s by route and status", "Traffic and errors per API route and webhook",
              [(_rate("switchboard_ingress_requests_total", "route, status"), "{{route}} {{status}}")], "reqps", width=12),
        Panel("Ingress 5xx ratio", "Which share of requests fail on our side (5xx)?",
              [(_ratio("switchboard_ingress_requests_total", 'status=~"5.."'), "5xx")], "percentunit", width=6),
        Panel("Ingress p99 latency by route", "Are REST calls and webhooks fast?",
              [(_quantile(0.99, "switchboard_ingress_request_duration_seconds", "route"), "{{route}}")], "s", width=6),
    ]),
    ("HTTP worker", [
        Panel("Outbound requests /s by outcome", "Do flows' HTTP calls succeed (2xx/3xx), get 4xx/5xx, time out, "
              "exceed 64 kB, get refused by the SSRF policy or fail to connect?",
              [(_rate("switchboard_http_worker_requests_total", "outcome"), "{{outcome}}")], "reqps", width=12),
        Panel("Outbound request duration", "How long do the called services take (p50, p99)?",
              [(_quantile(0.5, "switchboard_http_worker_request_duration_seconds"), "p50"),
               (_quantile(0.99, "switchboard_http_worker_request_duration_seconds"), "p99")], "s", width=12),
        Panel("Studio events /s (Event Streams)", "Do execution and step events reach the studio-events topic and "
              "the webhook sinks, or does a sink refuse them?",
              [(_rate("switchboard_event_stream_events_total", "destination, outcome"), "{{destination}} {{outcome}}")],
              "ops", width=24),
    ]),
    ("Kafka", [
        Panel("Consumer lag by group and topic", "Are the processor and the http-worker pool keeping up?",
              [("max by (group, topic) (switchboard_kafka_consumer_lag)", "{{group}} {{topic}}")], "short", width=12),
        Panel("Kafka produce errors /s", "Can the services write to Kafka?",
              [(_rate("switchboard_kafka_produce_errors_total", "job, topic"), "{{job}} {{topic}}")], "ops", width=12),
    ]),
    ("Timers", [
        Panel("Timers pending", "How many timers (timeouts, expiries) wait to fire?",
              [("sum(switchboard_timers_pending)", "pending")], "short", width=6),
        Panel("Timers fired /s", "How many timers fire?",
              [("sum(rate(switchboard_timers_fired_total[" + R + "]))", "fired")], "ops", width=6),
        Panel("Timer lateness p99", "Do timers fire on time?",
              [(_quantile(0.99, "switchboard_timer_lateness_seconds"), "p99")], "s", width=6),
        Panel("Timer partitions by state", "Is a scheduler still re-reading its timers after a rebalance?",
              [("sum by (state) (switchboard_timer_partitions)", "{{state}}")], "short", width=6),
    ]),
    ("Services", [
        Panel("Targets up", "Is every service instance scraped?",
              [(f"sum by (job) (up{{{_SERVICES}}})", "{{job}}")], "short"),
        Panel("CPU per service", "Which service saturates the CPU (cores used)?",
              [(f"sum by (job) (rate(process_cpu_seconds_total{{{_SERVICES}}}[{R}]))", "{{job}}")], "short"),
        Panel("Resident memory per instance", "Does a service grow (state, history read model)?",
              [(f"process_resident_memory_bytes{{{_SERVICES}}}", "{{job}} {{instance}}")], "bytes"),
        Panel("Build info", "Which version runs where?",
              [("switchboard_build_info", "{{component}} {{version}}")], "short", kind="table", width=24,
              extra={"options": {"showHeader": True}}),
    ]),
]


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for row_title, row in ROWS:
        panels.append({"type": "row", "title": row_title, "id": next_id, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        x = 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            body: dict[str, Any] = {
                "type": panel.kind, "title": panel.title, "description": panel.description, "id": next_id,
                "datasource": _DS, "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [{"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i),
                             **({"format": "table", "instant": True} if panel.kind == "table" else {})}
                            for i, (expr, legend) in enumerate(panel.targets)],
                **panel.extra,
            }
            panels.append(body)
            next_id += 1
            x += panel.width
        y += 8
    return {
        "uid": "switchboard-overview", "title": "Switchboard", "tags": ["switchboard"], "editable": True,
        "schemaVersion": 39, "version": 1, "timezone": "browser", "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "templating": {"list": []}, "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
