"""What a Job's or a pod's status means for a run: pure functions over the API's JSON.

Kept apart from the executor so the reading of Kubernetes states (protocols.md
A1-A2) can be tested on its own: only `Complete`/`Failed` conditions with
status "True" end a Job; the pod says why it failed (exit code, OOMKilled,
Evicted); and some pod states never end by themselves (image pull errors,
config errors, unschedulable pods), so the executor gives up on them after a
timeout instead of hanging until activeDeadlineSeconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Waiting reasons, by how the executor treats them.
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
HOPELESS_REASONS = ("InvalidImageName", "ErrImageNeverPull")  # retrying never helps
IMAGE, PENDING = "image", "pending"  # which timeout a stuck pod is held to


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    exit_code: int | None
    reason: str | None


@dataclass(frozen=True)
class Stuck:
    """A pod that waits on something that may never come."""

    timeout: str  # IMAGE or PENDING
    reason: str  # e.g. "ImagePullBackOff: Back-off pulling image ..."


def job_outcome(job: dict[str, Any]) -> tuple[str, str] | None:
    """("Complete" | "Failed", reason: message) once the Job is finished, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return cond["type"], _join(cond.get("reason"), cond.get("message"))
    return None


def pod_failure(pod: dict[str, Any]) -> Outcome | None:
    """Why a failed pod failed, or None if it has not failed."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    if status.get("reason") in ("Evicted", "DeadlineExceeded"):
        return Outcome(False, None, _join(status["reason"], status.get("message")))
    for cs in _statuses(status):
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("exitCode", 0) != 0:
            code, reason = term["exitCode"], term.get("reason") or "Error"
            if reason == "OOMKilled":
                return Outcome(False, code, f"OOMKilled (container {cs['name']})")
            text = f"{reason}: exit code {code} (container {cs['name']})"
            return Outcome(False, code, _join(text, term.get("message")))
    return Outcome(False, None, _join(status.get("reason") or "Failed", status.get("message")))


def pod_running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded"):
        return True
    return any("running" in (cs.get("state") or {}) for cs in _statuses(status))


def pod_stuck(pod: dict[str, Any]) -> Stuck | Outcome | None:
    """A pending pod's trouble: an Outcome when it is hopeless, a Stuck when it may recover."""
    status = pod.get("status") or {}
    if status.get("phase") != "Pending":
        return None
    for cs in _statuses(status):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        text = _join(reason, waiting.get("message"))
        if reason in HOPELESS_REASONS:
            return Outcome(False, None, text)
        if reason in IMAGE_REASONS:
            return Stuck(IMAGE, text)
        if reason in CONFIG_REASONS:
            return Stuck(PENDING, text)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return Stuck(PENDING, _join(cond.get("reason") or "Unschedulable", cond.get("message")))
    return None


def _statuses(status: dict[str, Any]) -> list[dict[str, Any]]:
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def _join(reason: str | None, message: str | None) -> str:
    return f"{reason}: {message}" if reason and message else reason or message or ""
