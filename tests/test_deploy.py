"""deploy/ and the Dockerfile: schema-valid manifests, least privilege, the agreed entry point."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from itinerary.config import load

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.37.0"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def objects(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict:
    [found] = [o for p in MANIFESTS for o in objects(p) if o["kind"] == kind]
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_it_validates_every_manifest_against_the_schema(path):
    for obj in objects(path):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_kustomize_build_validates():
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    built = [doc for doc in yaml.safe_load_all(out) if doc]
    assert len(built) == sum(len(objects(p)) for p in MANIFESTS)
    for obj in built:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"].get("namespace", "itinerary") == "itinerary"


def test_the_role_grants_only_what_the_executor_and_the_lease_use():
    rules = {
        (group, resource, *rule.get("resourceNames", [])): sorted(rule["verbs"])
        for rule in by_kind("Role")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules == {
        ("batch", "jobs"): sorted(["create", "get", "list", "watch", "delete"]),
        ("", "pods"): ["get", "list", "watch"],
        ("", "pods/log"): ["get"],
        ("coordination.k8s.io", "leases"): ["create"],
        ("coordination.k8s.io", "leases", "itinerary-scheduler"): ["get", "update"],
    }


def test_the_deployment_elects_its_leader_through_the_granted_lease():
    [container] = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ITINERARY_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"] == {
        "fieldPath": "metadata.namespace"
    }
    plain = {k: e["value"] for k, e in env.items() if "value" in e}
    config = load(None, {**plain, "ITINERARY_HOST": "0.0.0.0"})
    assert config.leader_election == "kubernetes"
    assert [config.lease_name] == [
        r["resourceNames"] for r in by_kind("Role")["rules"] if "resourceNames" in r
    ][0]


def test_the_role_is_bound_to_the_deployments_service_account():
    binding = by_kind("RoleBinding")
    account = by_kind("ServiceAccount")["metadata"]["name"]
    assert binding["roleRef"]["name"] == by_kind("Role")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": "itinerary"}
    ]
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account


def test_the_deployment_runs_kubernetes_replicas_with_probes():
    deployment = by_kind("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == [
        "python",
        "itinerary.py",
        "--host",
        "0.0.0.0",
        "--executor",
        "kubernetes",
    ]
    assert "--insecure-no-auth" not in container["command"]
    [dsn] = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    [hosts] = [e for e in container["env"] if e["name"] == "ITINERARY_ALLOWED_HOSTS"]
    load(None, {"ITINERARY_HOST": "0.0.0.0", "ITINERARY_ALLOWED_HOSTS": hosts["value"]})
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "itinerary-database", "key": "DATABASE_URL"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_it_keeps_one_replica_through_voluntary_disruptions():
    budget = by_kind("PodDisruptionBudget")
    pod_labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] == 1


def test_the_service_reaches_the_deployments_port():
    service = by_kind("Service")
    pod_labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def test_the_dockerfile_builds_a_non_root_python_image():
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert ("RUN", "pip install -r requirements.txt") in steps
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    run_as = by_kind("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert users[-1] == str(run_as)
    assert steps[-1] == ("CMD", '["python", "itinerary.py"]')


def test_the_docker_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "tests", "*.db"):
        assert entry in ignored
