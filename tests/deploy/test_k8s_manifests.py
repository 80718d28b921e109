"""The Kubernetes manifests parse, and workers scale on the depth of their queue."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.queues import AGENT_QUEUE

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def all_documents() -> list[dict[str, Any]]:
    return [d for path in sorted(K8S.rglob("*.yaml")) for d in documents(path)]


def test_every_manifest_parses_as_kubernetes_objects() -> None:
    """Each YAML document names its apiVersion and kind."""
    docs = all_documents()
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc


def test_kustomization_lists_files_that_exist() -> None:
    """`kubectl apply -k deploy/k8s` would find every resource it names."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


def test_kustomize_renders_the_manifests() -> None:
    """kubectl (no cluster needed) renders the kustomization."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout) if d}
    assert {"Deployment", "Service", "Job", "ScaledObject", "Ingress"} <= kinds


def test_workers_scale_on_the_agent_queue_length() -> None:
    """The autoscaler targets the worker Deployment and reads the agent queue's Redis list."""
    scaled = next(
        d for d in documents(K8S / "worker-autoscaler.yaml") if d["kind"] == "ScaledObject"
    )
    assert scaled["spec"]["scaleTargetRef"]["name"] == "chatops-worker"
    lists = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"] if t["type"] == "redis"}
    config = next(d for d in documents(K8S / "configmap.yaml"))
    assert f"{config['data']['QUEUE_NAMESPACE']}:{AGENT_QUEUE}" in lists

    hpa = documents(K8S / "alternatives" / "worker-hpa-external.yaml")[0]
    assert hpa["kind"] == "HorizontalPodAutoscaler"
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]
    assert metric["name"] == "chatops_queue_messages"
    assert metric["selector"]["matchLabels"] == {"queue": AGENT_QUEUE}


def test_only_slack_routes_are_public() -> None:
    """The Ingress exposes /slack/ and nothing else, so /metrics stays in the cluster."""
    ingress = documents(K8S / "ingress.yaml")[0]
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/slack/"]
