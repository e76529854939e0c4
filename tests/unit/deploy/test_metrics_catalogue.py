"""The metric catalogue: Prometheus naming conventions, bounded labels, and every metric documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

import shared.metrics  # noqa: F401 - registers every Switchboard metric

ROOT = Path(__file__).resolve().parents[3]
#: Label names that would carry unbounded values; none may appear.
UNBOUNDED = {"sid", "execution_sid", "flow_sid", "call_sid", "url", "number", "phone", "to", "from", "contact", "body"}


def _switchboard_metrics() -> list[Metric]:
    return [m for m in REGISTRY.collect() if m.name.startswith("switchboard_")]


def _exposed_name(metric: Metric) -> str:
    return {"counter": metric.name + "_total", "info": metric.name + "_info"}.get(metric.type, metric.name)


METRICS = _switchboard_metrics()


def test_there_is_a_catalogue() -> None:
    assert len(METRICS) >= 15


@pytest.mark.parametrize("metric", METRICS, ids=[m.name for m in METRICS])
def test_every_metric_follows_the_naming_conventions(metric: Metric) -> None:
    name = _exposed_name(metric)
    if metric.type == "histogram":
        assert name.endswith("_seconds"), name  # durations in the base unit
    if metric.type == "counter":
        assert name.endswith("_total"), name
    assert name == name.lower() and ":" not in name


@pytest.mark.parametrize("metric", METRICS, ids=[m.name for m in METRICS])
def test_no_metric_has_a_label_that_would_carry_sids_numbers_or_urls(metric: Metric) -> None:
    collector = REGISTRY._names_to_collectors.get(metric.name) or REGISTRY._names_to_collectors.get(  # noqa: SLF001
        _exposed_name(metric))
    labels = set(getattr(collector, "_labelnames", ()))
    assert not labels & UNBOUNDED, (metric.name, labels)


@pytest.mark.parametrize("metric", METRICS, ids=[m.name for m in METRICS])
def test_every_metric_is_listed_in_the_readme_with_its_question(metric: Metric) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Operations"):]
    name = _exposed_name(metric)
    assert f"`{name}`" in section, f"add {name} and the question it answers to README.md, section Operations"
