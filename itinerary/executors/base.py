"""The executor interface: how an orchestrator starts, follows, kills and reads a run.

One `Execution` per attempt. Its `events` queue receives `ExecEvent`s in order:
`started`, `running`, then exactly one final event (`succeeded`, `failed`,
`killed` or `lost`); `logs` events may come at any time. Executors never touch
the database: the orchestrator records what they report through the syncer.
`handle` is what the executor needs to find the workload again after a restart
(stored on the run row): a Kubernetes Job and pod name, or a pid and log file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gevent.queue import Queue

from itinerary.ids import RunId
from itinerary.jobs import JobSpec

STARTED = "started"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
KILLED = "killed"
LOST = "lost"
FINAL = (SUCCEEDED, FAILED, KILLED, LOST)


class ExecutorError(Exception):
    """Starting or killing failed. `transient` says whether retrying may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class RunRequest:
    """What to run: the job as it was when the run was launched, plus its overrides."""

    run_id: RunId
    job: JobSpec
    scheduled_at: datetime
    attempt: int = 1
    args: tuple[str, ...] = ()
    resources: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    trigger: str = "schedule"


def context_env(request: RunRequest) -> dict[str, str]:
    """The run's own context, in every workload's environment (and Job annotations).

    So a job can process "its" slot idempotently: the scheduled time, not the start.
    """
    return {
        "ITINERARY_JOB_NAME": request.job.name,
        "ITINERARY_RUN_ID": request.run_id,
        "ITINERARY_ATTEMPT": str(request.attempt),
        "ITINERARY_TRIGGER": request.trigger,
        "ITINERARY_SCHEDULED_AT": request.scheduled_at.isoformat().replace("+00:00", "Z"),
    }


@dataclass(frozen=True)
class ExecEvent:
    kind: str  # one of STARTED, RUNNING, SUCCEEDED, FAILED, KILLED, LOST
    at: datetime
    exit_code: int | None = None
    reason: str | None = None  # e.g. "OOMKilled", "DeadlineExceeded", "exit code 3"
    handle: dict[str, Any] | None = None  # updated handle (e.g. the pod name once known)

    @property
    def final(self) -> bool:
        return self.kind in FINAL


@dataclass
class Execution:
    """A started (or adopted) attempt."""

    run_id: RunId
    attempt: int
    handle: dict[str, Any]
    events: Queue = field(default_factory=Queue)


class Executor(Protocol):
    name: str  # "local" or "kubernetes": stored on the run

    def start(self, request: RunRequest) -> Execution:
        """Start an attempt; idempotent: starting the same (run_id, attempt) twice adopts."""

    def adopt(self, request: RunRequest, handle: dict[str, Any]) -> Execution | None:
        """Re-attach to an attempt started by an earlier process; None if it is gone."""

    def kill(self, execution: Execution, reason: str, grace_seconds: float = 10.0) -> None:
        """Stop the attempt; its events end with KILLED."""

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        """The attempt's output so far (the last `tail_lines` lines when given)."""

    def close(self) -> None:
        """Stop watching; running workloads are left alone for the next process to adopt."""
