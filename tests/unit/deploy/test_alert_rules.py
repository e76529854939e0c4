"""The Prometheus config and alert rules: promtool (Debian's package, extracted) checks and unit-tests them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.prometheus_deb import promtool_binary

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "switchboard.rules.yml"


@pytest.fixture(scope="module")
def promtool() -> Path:
    return promtool_binary()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules_file(promtool: Path) -> None:
    result = _run(str(promtool), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config(promtool: Path) -> None:
    result = _run(str(promtool), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_its_signal_and_stays_quiet_on_healthy_input(promtool: Path) -> None:
    result = _run(str(promtool), "test", "rules", str(PROMETHEUS / "tests" / "switchboard.rules.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load((PROMETHEUS / "tests" / "switchboard.rules.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert alerts == tested


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
                assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_a_broken_rule_is_rejected(promtool: Path, tmp_path: Path) -> None:
    """The check is not vacuous: promtool fails a rule whose expression does not parse."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(foo[5m])\n")
    assert _run(str(promtool), "check", "rules", str(broken)).returncode != 0


def test_the_scrape_config_scrapes_the_four_services_on_their_default_ports() -> None:
    from shared.settings import Settings

    s = Settings()
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    assert targets == {
        "switchboard-ingress": [f"ingress:{s.ingress_port}"],
        "switchboard-processor": [f"processor:{s.processor_port}"],
        "switchboard-http-worker": [f"http-worker:{s.http_worker_port}"],
        "switchboard-scheduler": [f"scheduler:{s.scheduler_port}"],
    }
