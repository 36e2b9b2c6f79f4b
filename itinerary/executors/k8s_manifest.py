"""The batch/v1 Job for one attempt of a run, built from its job definition.

Pure functions over plain dicts (no Kubernetes client objects), so the manifest
can be validated against the OpenAPI schema in tests and sent as a JSON body.
The Job's name is deterministic (design.md, "Kubernetes"): creating the same
attempt twice is answered 409 AlreadyExists, which the executor treats as
"adopt it". Labels are put on the Job and on its pod template, so the one
per-namespace watch over pods with the managed-by label sees every pod and can
route it to its run by the run-id label.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from typing import Any

from itinerary.executors.base import RunRequest, context_env
from itinerary.jobs import JobSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "itinerary"
JOB_ID = "itinerary.dev/job-id"
RUN_ID = "itinerary.dev/run-id"
ATTEMPT = "itinerary.dev/attempt"
JOB_NAME = "itinerary.dev/job-name"
SCHEDULED_AT = "itinerary.dev/scheduled-at"
TRIGGER = "itinerary.dev/trigger"
SELECTOR = f"{MANAGED_BY}={MANAGER}"

NAME_MAX = 63
HASH_LEN = 10
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


class ManifestError(ValueError):
    """The job definition cannot become a Kubernetes Job (e.g. no image)."""


def job_name(job: JobSpec, request: RunRequest) -> str:
    """DNS-1123 prefix of the job's name + a hash of (job id, scheduled_at, attempt)."""
    key = f"{job.id}|{request.scheduled_at.isoformat()}|{request.attempt}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:HASH_LEN]
    prefix = _NOT_DNS.sub("-", job.name.lower())[: NAME_MAX - HASH_LEN - 1].strip("-")
    return f"{prefix}-{digest}" if prefix else f"run-{digest}"


def labels(request: RunRequest) -> dict[str, str]:
    """The labels the watches select and dispatch on."""
    return {
        MANAGED_BY: MANAGER,
        JOB_ID: str(request.job.id),
        RUN_ID: request.run_id,
        ATTEMPT: str(request.attempt),
    }


def build_job(
    request: RunRequest,
    *,
    backoff_limit: int = 0,
    ttl_seconds_after_finished: int | None = None,
) -> dict[str, Any]:
    """The Job manifest for `request` (a plain dict, ready to POST)."""
    job = request.job
    pod_labels = labels(request)
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": pod_spec(request)},
    }
    deadline = job.seconds("maxAllowedRunTime")
    if deadline:
        # A second line of defence behind the orchestrator's own kill (design.md).
        spec["activeDeadlineSeconds"] = max(1, math.ceil(deadline))
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job, request),
            "namespace": job.namespace,
            "labels": pod_labels,
            "annotations": {
                JOB_NAME: job.name,
                SCHEDULED_AT: context_env(request)["ITINERARY_SCHEDULED_AT"],
                RUN_ID: request.run_id,
                ATTEMPT: str(request.attempt),
                TRIGGER: request.trigger,
            },
        },
        "spec": spec,
    }


def pod_spec(request: RunRequest) -> dict[str, Any]:
    """The pod template's spec: the job's own podSpec, or one built from the simple fields."""
    job = request.job
    if job.pod_spec is not None:
        spec = copy.deepcopy(job.pod_spec)
        spec.setdefault("restartPolicy", "Never")
        _override_first(spec["containers"], request)
        _add_context(spec["containers"], request)
        return spec
    if not job.images:
        raise ManifestError(f"job {job.name!r} has no images (or podSpec) to run on Kubernetes")
    env = {**job.env, **_allowed(request, "env", request.env, {})}
    resources = _allowed(request, "resources", request.resources, None) or job.resources
    containers = []
    for i, image in enumerate(job.images):
        container: dict[str, Any] = {
            "name": job.name if i == 0 else f"{job.name}-{i}",
            "image": image,
        }
        if i < len(job.commands):
            container["command"] = list(job.commands[i])
        if i == 0 and effective_args(request):
            container["args"] = list(effective_args(request))
        container.update(_env(env, job.env_secret))
        if resources:
            container["resources"] = copy.deepcopy(resources)
        containers.append(container)
    _add_context(containers, request)
    spec = {"restartPolicy": "Never", "containers": containers}
    if job.service_accounts:
        # A pod runs as one service account; the first one listed is the job's.
        spec["serviceAccountName"] = job.service_accounts[0]
    return spec


def effective_args(request: RunRequest) -> tuple[str, ...]:
    """The run's args: its override when the job allows one, else the job's defaults."""
    return _allowed(request, "args", request.args, ()) or request.job.args


def _allowed(request: RunRequest, field: str, value: Any, empty: Any) -> Any:
    """`value` when the job lets a run modify `field`, else `empty`."""
    if value and field in request.job.manual_run_modifiable_fields:
        return value
    return empty


def _env(env: dict[str, str], env_secret: Any) -> dict[str, Any]:
    """`env` and `envFrom` of a container: plain values, then Secrets whole or by key."""
    out: dict[str, Any] = {}
    items: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    if isinstance(env_secret, dict):
        for name, ref in sorted(env_secret.items()):
            secret, key = ref.split("/")
            items.append(
                {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            )
    elif env_secret:
        out["envFrom"] = [{"secretRef": {"name": secret}} for secret in env_secret]
    if items:
        out["env"] = items
    return out


def _add_context(containers: list[dict[str, Any]], request: RunRequest) -> None:
    """The run's context (ITINERARY_*) in every container's env, over any same-named entry."""
    context = context_env(request)
    for container in containers:
        kept = [e for e in container.get("env", []) if e.get("name") not in context]
        container["env"] = kept + [{"name": k, "value": v} for k, v in context.items()]


def _override_first(containers: list[dict[str, Any]], request: RunRequest) -> None:
    """Apply a run's allowed overrides to the first container of a full podSpec."""
    if not containers:
        return
    first = containers[0]
    args = _allowed(request, "args", request.args, ())
    if args:
        first["args"] = list(args)
    resources = _allowed(request, "resources", request.resources, None)
    if resources:
        first["resources"] = copy.deepcopy(resources)
    env = _allowed(request, "env", request.env, {})
    if env:
        kept = [e for e in first.get("env", []) if e.get("name") not in env]
        first["env"] = kept + [{"name": k, "value": v} for k, v in sorted(env.items())]
