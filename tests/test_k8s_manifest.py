"""The Job manifest builder: names, labels, fields, overrides, schema validity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import kubernetes_validate
import pytest

from itinerary.executors.base import RunRequest
from itinerary.executors.k8s_manifest import (
    ManifestError,
    build_job,
    effective_args,
    job_name,
)
from itinerary.jobs import parse_job

K8S_VERSION = "1.37.0"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def full_job(**changes):
    body = {
        "name": "nightly-report",
        "schedule": "30 2 * * 1-5",
        "namespace": "batch",
        "images": ["registry.example/report:1.4", "registry.example/sidecar:2"],
        "commands": [["python", "-m", "report"]],
        "args": ["--region", "eu"],
        "serviceAccounts": ["report-runner"],
        "env": {"LOG_LEVEL": "info"},
        "envSecret": ["report-credentials"],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "constraints": {"maxAllowedRunTime": "1h"},
        "manualRunModifiableFields": ["args"],
        **changes,
    }
    return parse_job(body).with_id(42)


def request(job=None, **changes):
    fields = {"run_id": "rabcdefghijklmno", "scheduled_at": AT, **changes}
    return RunRequest(job=job or full_job(), **fields)


def validate(manifest):
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_it_builds_a_valid_job_from_the_simple_fields():
    manifest = build_job(request())
    validate(manifest)
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    assert manifest["metadata"]["namespace"] == "batch"
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in spec
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "report-runner"
    first, second = pod["containers"]
    assert first["image"] == "registry.example/report:1.4"
    assert first["command"] == ["python", "-m", "report"]
    assert first["args"] == ["--region", "eu"]
    assert first["env"][0] == {"name": "LOG_LEVEL", "value": "info"}
    assert first["envFrom"] == [{"secretRef": {"name": "report-credentials"}}]
    assert first["resources"]["limits"] == {"memory": "1Gi"}
    # The second image runs with its own entrypoint and no args.
    assert "command" not in second and "args" not in second
    assert second["name"] != first["name"]


def test_it_maps_single_secret_keys_to_secret_key_refs():
    manifest = build_job(request(full_job(envSecret={"DB_PASSWORD": "db/password"})))
    validate(manifest)
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
    } in env
    assert "envFrom" not in manifest["spec"]["template"]["spec"]["containers"][0]


def test_it_labels_job_and_pods_for_the_watches():
    manifest = build_job(request(attempt=3))
    expected = {
        "app.kubernetes.io/managed-by": "itinerary",
        "itinerary.dev/job-id": "42",
        "itinerary.dev/run-id": "rabcdefghijklmno",
        "itinerary.dev/attempt": "3",
    }
    assert manifest["metadata"]["labels"] == expected
    assert manifest["spec"]["template"]["metadata"]["labels"] == expected


def test_it_names_jobs_deterministically_per_attempt():
    job = full_job()
    first = job_name(job, request(job))
    assert first == job_name(job, request(job, run_id="rother0000000000"))
    assert first != job_name(job, request(job, attempt=2))
    assert first != job_name(job.with_id(43), request(job.with_id(43)))
    assert first.startswith("nightly-report-")


def test_it_keeps_long_names_within_63_characters():
    job = full_job(name="a" * 52)
    name = job_name(job, request(job))
    assert len(name) == 63
    validate(build_job(request(job)))


def test_it_applies_only_the_overrides_the_job_allows():
    req = request(args=("--region", "us"), resources={"limits": {"memory": "8Gi"}})
    container = build_job(req)["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--region", "us"]
    # resources are not in manualRunModifiableFields, so the job's own stay.
    assert container["resources"]["limits"] == {"memory": "1Gi"}


def test_it_ignores_args_overrides_when_not_allowed():
    job = full_job(manualRunModifiableFields=[])
    assert effective_args(request(job, args=("--evil",))) == ("--region", "eu")


def test_it_uses_a_full_pod_spec_and_overrides_its_first_container():
    pod_spec = {
        "containers": [{"name": "main", "image": "busybox", "args": ["a"]}],
        "nodeSelector": {"pool": "batch"},
    }
    job = parse_job(
        {
            "name": "custom",
            "podSpec": pod_spec,
            "manualRunModifiableFields": ["args", "resources", "env"],
        }
    ).with_id(7)
    req = request(job, args=("b",), resources={"limits": {"cpu": "1"}}, env={"X": "1"})
    manifest = build_job(req, backoff_limit=2, ttl_seconds_after_finished=600)
    validate(manifest)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "batch"}
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["b"]
    assert pod["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    assert pod["containers"][0]["env"][0] == {"name": "X", "value": "1"}
    assert manifest["spec"]["backoffLimit"] == 2
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 600
    assert "activeDeadlineSeconds" not in manifest["spec"]
    # The job definition itself is not changed by a run's overrides.
    assert job.pod_spec["containers"][0]["args"] == ["a"]


def test_it_refuses_a_job_without_images():
    job = replace(full_job(), images=(), commands=(("echo",),))
    with pytest.raises(ManifestError):
        build_job(request(job))


def test_it_rounds_sub_second_deadlines_up():
    job = full_job(constraints={"maxAllowedRunTime": "90s"})
    assert build_job(request(job))["spec"]["activeDeadlineSeconds"] == 90


def test_it_gives_every_container_and_the_job_the_run_context() -> None:
    req = request(attempt=2, trigger="kickoff")
    manifest = build_job(req)
    validate(manifest)
    context = {
        "ITINERARY_JOB_NAME": "nightly-report",
        "ITINERARY_RUN_ID": "rabcdefghijklmno",
        "ITINERARY_ATTEMPT": "2",
        "ITINERARY_TRIGGER": "kickoff",
        "ITINERARY_SCHEDULED_AT": "2026-03-01T12:00:00Z",
    }
    for container in manifest["spec"]["template"]["spec"]["containers"]:
        assert {e["name"]: e.get("value") for e in container["env"]}.items() >= context.items()
    notes = manifest["metadata"]["annotations"]
    assert notes["itinerary.dev/trigger"] == "kickoff" and notes["itinerary.dev/attempt"] == "2"
    assert notes["itinerary.dev/scheduled-at"] == "2026-03-01T12:00:00Z"
