"""Kubernetes manifests: kubernetes-validate --strict for built-in kinds, small JSON schemas for the CRDs.

kubernetes-validate ships no schemas for CRDs (it only warns), so ServiceMonitor, PrometheusRule and
ScaledObject are checked against the subset of their CRD schemas written below (additionalProperties false
where a typo would silently disable the object), and the PrometheusRule must equal the promtool-tested rules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests target (pod-index label: 1.28+)
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCS = _documents()
BUILTIN = [(name, doc) for name, doc in DOCS if doc["kind"] not in CRD_KINDS]
CRDS = [(name, doc) for name, doc in DOCS if doc["kind"] in CRD_KINDS]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


@pytest.mark.parametrize(("name", "doc"), BUILTIN, ids=[n for n, _ in BUILTIN])
def test_every_builtin_manifest_passes_strict_schema_validation(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    pdb = yaml.safe_load((K8S / "40-processor.yaml").read_text().split("---")[-1])
    pdb["spec"]["maxUnavailabel"] = pdb["spec"].pop("maxUnavailable")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_validate_cli_passes_on_every_manifest() -> None:
    files = [str(p) for p in sorted(K8S.rglob("*.yaml"))]
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION,
                             *files], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


_OBJECT = {"type": "object"}
_META = {"type": "object", "required": ["name", "namespace"]}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"}, "metadata": _META,
            "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
                     "properties": {
                         "selector": {"type": "object", "additionalProperties": False,
                                      "properties": {"matchLabels": _OBJECT, "matchExpressions": {"type": "array"}}},
                         "namespaceSelector": {"type": "object", "additionalProperties": False,
                                               "properties": {"matchNames": {"type": "array"}, "any": {"type": "boolean"}}},
                         "jobLabel": {"type": "string"},
                         "endpoints": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "additionalProperties": False, "required": ["port"],
                             "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                            "scheme": {"enum": ["http", "https"]}}}}}},
        },
    },
    "PrometheusRule": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"}, "metadata": _META,
            "spec": {"type": "object", "required": ["groups"], "additionalProperties": False,
                     "properties": {"groups": {"type": "array", "items": {
                         "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                         "properties": {"name": {"type": "string"}, "interval": {"type": "string"},
                                        "rules": {"type": "array", "items": {
                                            "type": "object", "required": ["expr"], "additionalProperties": False,
                                            "properties": {"record": {"type": "string"}, "alert": {"type": "string"},
                                                           "expr": {"type": "string"}, "for": {"type": "string"},
                                                           "labels": _OBJECT, "annotations": _OBJECT}}}}}}}},
        },
    },
    "ScaledObject": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": "ScaledObject"}, "metadata": _META,
            "spec": {"type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
                     "properties": {
                         "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                            "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                                           "apiVersion": {"type": "string"}}},
                         "minReplicaCount": {"type": "integer", "minimum": 0},
                         "maxReplicaCount": {"type": "integer", "minimum": 1},
                         "pollingInterval": {"type": "integer"}, "cooldownPeriod": {"type": "integer"},
                         "idleReplicaCount": {"type": "integer"},
                         "advanced": {"type": "object", "additionalProperties": False, "properties": {
                             "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False,
                                                               "properties": {"name": {"type": "string"},
                                                                              "behavior": _OBJECT}},
                             "restoreToOriginalReplicaCount": {"type": "boolean"}}},
                         "triggers": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
                             "properties": {"type": {"type": "string"}, "metadata": {
                                 "type": "object", "additionalProperties": {"type": "string"}},
                                 "metricType": {"enum": ["Utilization", "AverageValue", "Value"]},
                                 "name": {"type": "string"}, "authenticationRef": _OBJECT}}}}},
        },
    },
}


@pytest.mark.parametrize(("name", "doc"), CRDS, ids=[n for n, _ in CRDS])
def test_every_custom_resource_matches_its_crd_subset_schema(name: str, doc: dict[str, Any]) -> None:
    errors = [e.message for e in Draft202012Validator(CRD_SCHEMAS[doc["kind"]]).iter_errors(doc)]
    assert not errors, errors


def test_the_prometheus_rule_is_exactly_the_promtool_tested_rules_file() -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules" / "switchboard.rules.yml").read_text())
    assert _by_kind("PrometheusRule")["switchboard"]["spec"]["groups"] == rules["groups"]


def test_the_service_monitor_selects_one_service_per_component_with_a_metrics_port() -> None:
    selector = _by_kind("ServiceMonitor")["switchboard"]["spec"]["selector"]["matchLabels"]
    selected = {name: svc for name, svc in _by_kind("Service").items()
                if all(svc["metadata"]["labels"].get(k) == v for k, v in selector.items())}
    # The Service name becomes the job label the rules and the dashboard match (switchboard-.+).
    assert set(selected) == {"switchboard-ingress", "switchboard-processor", "switchboard-http-worker",
                             "switchboard-scheduler"}
    for svc in selected.values():
        assert "metrics" in {p["name"] for p in svc["spec"]["ports"]}


def _containers() -> dict[str, dict[str, Any]]:
    workloads = {**_by_kind("Deployment"), **_by_kind("StatefulSet")}
    return {name: wl["spec"]["template"]["spec"]["containers"][0] for name, wl in workloads.items()}


@pytest.mark.parametrize("workload", ["switchboard-ingress", "switchboard-processor", "switchboard-http-worker",
                                      "switchboard-scheduler"])
def test_every_service_has_probes_on_its_endpoints_resources_and_the_shared_settings(workload: str) -> None:
    container = _containers()[workload]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"configMapRef": {"name": "switchboard-config"}} in container["envFrom"]
    assert {"secretRef": {"name": "switchboard-secrets"}} in container["envFrom"]
    port = container["ports"][0]["containerPort"]
    s = Settings()
    default = {"switchboard-ingress": s.ingress_port, "switchboard-processor": s.processor_port,
               "switchboard-http-worker": s.http_worker_port, "switchboard-scheduler": s.scheduler_port}[workload]
    assert port == default
    assert _by_kind("PodDisruptionBudget")[workload]["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": workload}


def test_each_ingress_pod_owns_the_reply_partition_of_its_ordinal_and_replicas_stay_within_the_partitions() -> None:
    env = {e["name"]: e for e in _containers()["switchboard-ingress"]["env"]}
    ref = env["SWITCHBOARD_INGRESS_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert ref == "metadata.labels['apps.kubernetes.io/pod-index']"
    config = _by_kind("ConfigMap")["switchboard-config"]["data"]
    hpa = _by_kind("HorizontalPodAutoscaler")
    assert hpa["switchboard-ingress"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert hpa["switchboard-ingress"]["spec"]["maxReplicas"] <= int(config["SWITCHBOARD_REPLY_PARTITIONS"])
    assert hpa["switchboard-http-worker"]["spec"]["maxReplicas"] <= int(config["SWITCHBOARD_EVENT_PARTITIONS"])
    Settings.from_env({**config, "SWITCHBOARD_INGRESS_INSTANCE": str(hpa["switchboard-ingress"]["spec"]["maxReplicas"] - 1),
                       **_by_kind("Secret")["switchboard-secrets"]["stringData"]})


def test_keda_scales_the_http_workers_on_their_groups_lag_and_takes_over_their_hpa() -> None:
    scaled = _by_kind("ScaledObject")["switchboard-http-worker"]
    kafka = next(t for t in scaled["spec"]["triggers"] if t["type"] == "kafka")["metadata"]
    assert (kafka["consumerGroup"], kafka["topic"]) == ("switchboard-http-worker", "switchboard.http-requests")
    from shared.lag import ENGINE_GROUPS

    assert ("switchboard-http-worker", "http-requests") in {(g.group, g.topic) for g in ENGINE_GROUPS}
    assert scaled["metadata"]["annotations"]["scaledobject.keda.sh/transfer-hpa-ownership"] == "true"
    assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"] == "switchboard-http-worker"
    assert scaled["spec"]["maxReplicaCount"] <= int(_by_kind("ConfigMap")["switchboard-config"]["data"][
        "SWITCHBOARD_EVENT_PARTITIONS"])


def test_each_processor_pod_keeps_its_tables_on_its_own_volume_and_is_its_own_static_member() -> None:
    processor = _by_kind("StatefulSet")["switchboard-processor"]
    container = processor["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    data_dir = env["SWITCHBOARD_PROCESSOR_DATA_DIR"]["value"]
    claims = {c["metadata"]["name"] for c in processor["spec"]["volumeClaimTemplates"]}
    mounts = [m for m in container["volumeMounts"] if data_dir.startswith(m["mountPath"].rstrip("/") + "/")]
    assert [m["name"] for m in mounts] == ["data"] and "data" in claims
    assert env["SWITCHBOARD_PROCESSOR_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert processor["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001
    assert Settings().processor_store == "rocksdb"
