"""docker-compose.yml against the Compose Specification schema (vendored in check-jsonschema) and the stack's wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_is_valid_against_the_compose_specification(validator: Draft202012Validator,
                                                                      compose: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_the_validator_rejects_a_misspelt_key(validator: Draft202012Validator, compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingress"]["depends_onn"] = broken["services"]["ingress"].pop("depends_on")
    assert list(validator.iter_errors(broken))


def test_check_jsonschema_cli_accepts_the_compose_file() -> None:
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                             str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_kafka_topics_the_four_services_prometheus_and_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "topics", "ingress", "processor", "http-worker", "scheduler", "prometheus", "grafana"}
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("ingress", "processor", "http-worker", "scheduler"):
        service = services[name]
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
        assert service["environment"]["SWITCHBOARD_KAFKA_BOOTSTRAP"] == "kafka:19092", name
        assert service["environment"]["SWITCHBOARD_INGRESS_HOST"] == "0.0.0.0", name


def test_every_service_command_is_a_module_the_image_can_run(compose: dict[str, Any]) -> None:
    import importlib.util

    for name, service in compose["services"].items():
        if service.get("image", "").startswith("switchboard:"):
            module = service["command"][0]
            assert importlib.util.find_spec(module) is not None, (name, module)


def test_prometheus_scrapes_the_compose_service_names_on_the_ports_they_listen_on(compose: dict[str, Any]) -> None:
    s = Settings()
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"ingress:{s.ingress_port}", f"processor:{s.processor_port}",
                       f"http-worker:{s.http_worker_port}", f"scheduler:{s.scheduler_port}"}
    assert targets <= {f"{name}:{port}" for name in compose["services"] for port in range(8080, 8084)}
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["services"]["prometheus"]["volumes"]


def test_the_dockerfile_builds_from_python_311_slim_and_installs_from_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nFROM python:3.11-slim\n" in text
    assert "-c requirements.lock" in text
    assert "USER 10001" in text


def test_the_processor_keeps_its_tables_on_a_volume_that_lives_as_long_as_kafkas_data(compose: dict[str, Any]) -> None:
    # Kafka's data is in its container (dropped by `down`); a named volume would outlive it and leave local
    # tables ahead of a fresh changelog (faust refuses to start then). An anonymous volume goes with `down`.
    processor = compose["services"]["processor"]
    data_dir = processor["environment"]["SWITCHBOARD_PROCESSOR_DATA_DIR"]
    assert [v for v in processor["volumes"] if data_dir.startswith(v.rstrip("/") + "/")] == ["/var/lib/switchboard"]
    assert compose["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"].startswith("/tmp/")
    assert processor["environment"]["SWITCHBOARD_KAFKA_BOOTSTRAP"] == "kafka:19092"  # the shared settings still apply
