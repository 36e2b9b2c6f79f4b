"""Every message that crosses a component boundary.

Components talk only through `gevent.queue` inboxes (design.md). Commands are
imperative nouns (`ClaimSlot`, `CancelRun`), facts are past tense
(`RunFinished`). Messages are frozen dataclasses that carry ids, never ORM
objects, plus an `at` taken from the sender's clock. A message that needs an
answer carries a `reply` (`gevent.event.AsyncResult`) that the receiver sets,
with a value or an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gevent.event import AsyncResult

from itinerary.jobs import JobSpec


def _reply() -> AsyncResult:
    return AsyncResult()


@dataclass
class Queues:
    """One inbox per component, named after it."""

    scheduler: Any
    syncer: Any
    stats: Any
    webhooks: Any
    anomaly: Any = None  # the anomaly detector's (None: no detector)


# --- scheduler loop inbox ---------------------------------------------------------------


@dataclass(frozen=True)
class JobUpserted:
    """A job was created or changed (already durable): rebuild the index for it."""

    job: JobSpec
    at: datetime


@dataclass(frozen=True)
class JobRemoved:
    """A job was archived or deleted: stop scheduling it."""

    job_id: int
    at: datetime


@dataclass(frozen=True)
class RunNow:
    """Run a job now (or at `start_at`) outside its schedule; reply is the new run id."""

    job_id: int
    at: datetime
    start_at: datetime | None = None
    args: tuple[str, ...] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    trigger: str = "manual"
    parent_run_id: str | None = None
    # Chosen by the sender when the request may be delivered twice (itinerary/commands.py):
    # a second delivery answers the same run instead of making another.
    run_id: str | None = None
    reply: AsyncResult = field(default_factory=_reply)
    job_name: str | None = None  # kickOffJob may name the job instead (job_id 0)
    depth: int = 0  # kickOffJob: how many runs up the chain of parents


@dataclass(frozen=True)
class CancelRun:
    """Cancel a run (kills its workload if started); reply True if it was active."""

    run_id: str
    reason: str
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class KillInstances:
    """Kill all (or only the latest) active runs of a job (killAll/killLatestInstance)."""

    job_id: int
    latest_only: bool
    reason: str
    at: datetime


@dataclass(frozen=True)
class SkipNext:
    """Skip the job's next scheduled slot (skipNextInstance); it is recorded as skipped.

    `reply` answers the slot that will be skipped, or KeyError (no such job) or
    ValueError (paused, or no next slot): the API's skip-next waits for it. `slot` names
    the slot exactly: a new leader re-applying a skip its predecessor accepted.
    """

    job_id: int
    reason: str
    at: datetime
    slot: datetime | None = None
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class RunFinished:
    """An orchestrator is done with its run."""

    run_id: str
    job_id: int
    scheduled_at: datetime
    status: str
    at: datetime


@dataclass(frozen=True)
class QueryActive:
    """Reply with a list of `ActiveRun` for one job (or all when job_id is None)."""

    job_id: int | None
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class AdmitRun:
    """maxConcurrentRuns: may this run start now? Reply `(decision, running run ids)`.

    The loop answers one request at a time, so two runs asking at once never both take
    the last place. Decision: "start" (the place is the run's until it ends), "queue"
    (ask again later: overlap "queue" within queueLimit, or "replace" after the oldest
    running instance was told to stop) or "full" (skip the run).
    """

    run_id: str
    job_id: int
    limit: int
    overlap: str  # "skip", "queue" or "replace"
    queue_limit: int
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class ActiveRun:
    run_id: str
    job_id: int
    scheduled_at: datetime
    status: str
    trigger: str
    started_at: datetime | None


@dataclass(frozen=True)
class GetLoopStats:
    """Reply with a dict of the loop's current figures."""

    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


# --- syncer inbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimSlot:
    """Insert the run row for a slot; reply True if claimed, False if the slot exists already.

    Never an upsert: a conflict on (job_id, scheduled_at) means someone else owns the slot.
    """

    run_id: str
    job_id: int
    scheduled_at: datetime
    trigger: str
    status: str
    at: datetime
    args: tuple[str, ...] | None = None
    reason: str | None = None
    reply: AsyncResult = field(default_factory=_reply)
    parent_run_id: str | None = None  # the run whose action started this one
    overrides: dict[str, Any] | None = None  # resources/env of a manual or kicked-off run


@dataclass(frozen=True)
class RunUpdate:
    """An idempotent change to a run, keyed by run id; None fields are left as they are.

    The syncer never moves a run out of a terminal state or back to an earlier state, and
    ignores an update older (`at`) than the last one applied.
    """

    run_id: str
    at: datetime
    status: str | None = None
    attempt: int | None = None
    reason: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    exit_code: int | None = None
    behind_schedule: bool | None = None
    executor: str | None = None
    handle: dict[str, Any] | None = None
    # The attempt's own outcome when it differs from the run's: attempt 1 failed and
    # the run goes on to attempt 2 (run_attempts.status; defaults to `status`).
    attempt_status: str | None = None
    # The attempt's own times when they differ from the run's (a retry starts later, and an
    # attempt before the last ends before the run does); default `started_at`/`completed_at`.
    attempt_started_at: datetime | None = None
    attempt_completed_at: datetime | None = None
    trigger: str | None = None  # a recovered slot run late by catchUp becomes "catchup"


@dataclass(frozen=True)
class ViolationRecord:
    id: int  # ids.new_row_id(): chosen by the sender
    run_id: str
    constraint: str  # a key of jobs.CONSTRAINT_TYPES
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionRunRecord:
    id: int
    run_id: str
    action: str  # a key of jobs.ACTION_TYPES
    trigger: str
    at: datetime
    success: bool
    error: str | None = None
    violation_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookDeliveryRecord:
    id: int
    run_id: str | None
    webhook_type: str
    trigger: str
    url: str  # secrets stripped by the sender
    attempt_count: int
    status_code: int | None
    success: bool
    error: str | None
    request_duration_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    integration: str | None = None
    delivery_key: str | None = None
    # delivered | retrying | failed | not_delivered (shutdown) | suppressed
    outcome: str | None = None
    response: str | None = None  # the answer's first characters


@dataclass(frozen=True)
class AnomalyRecord:
    """An unusual run (or a slot with no run) found by the anomaly detector."""

    id: int  # chosen by the detector: a silent slot's is derived from the slot
    job_id: int
    run_id: str | None
    slot_at: datetime | None
    kind: str  # itinerary.anomaly.KINDS
    at: datetime
    score: float
    baseline: dict[str, Any]
    explanation: str


@dataclass(frozen=True)
class SaveJob:
    """Create or update a job definition; reply is the stored JobSpec (with id and times)."""

    job: JobSpec
    at: datetime
    expected_updated_at: datetime | None = None
    audit: Any = None  # an itinerary.audit.Entry, written in the same transaction
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class TokenUsed:
    """An API token authenticated a request at `at` (sent at most once a minute per token).

    It rides with job definitions, the other writes made on behalf of API callers;
    nobody waits for the reply.
    """

    token_hash: str
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class ArchiveJob:
    """Archive a job (history kept); reply is True if it existed."""

    job_id: int
    at: datetime
    audit: Any = None  # an itinerary.audit.Entry, written in the same transaction
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class StatsRows:
    """One stats period's rows for a stats table, written like any other batch."""

    table: str
    rows: tuple[dict[str, Any], ...]
    at: datetime


@dataclass(frozen=True)
class SaveIntegration:
    """Create (`create`) or update a named integration; reply is the stored Integration."""

    integration: Any  # itinerary.webhooks.integrations.Integration
    create: bool
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class DeleteIntegration:
    """Delete an integration no live job names; reply True if it existed."""

    name: str
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class MarkIntegration:
    """Set (a reason) or clear (None) an integration's broken state; nobody waits."""

    name: str
    reason: str | None
    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


@dataclass(frozen=True)
class Flush:
    """Write everything pending now; reply when it is durable."""

    at: datetime
    reply: AsyncResult = field(default_factory=_reply)


# --- stats collector inbox -----------------------------------------------------------------


@dataclass(frozen=True)
class LoopIteration:
    at: datetime
    duration_s: float
    inbox_length: int
    messages: int
    time_in_inbox_s: tuple[float, ...]
    launched: int
    late_by_s: tuple[float, ...]  # per late start: how late
    missed_by_s: tuple[float, ...]  # per missed slot: how long past its grace period
    cancelled: int
    active_runs: int

    @property
    def late(self) -> int:
        return len(self.late_by_s)

    @property
    def missed(self) -> int:
        return len(self.missed_by_s)


@dataclass(frozen=True)
class RunStartLateness:
    run_id: str
    job_id: int
    at: datetime
    lateness_s: float


@dataclass(frozen=True)
class RunCompleted:
    run_id: str
    job_id: int
    job_name: str
    status: str
    at: datetime
    runtime_s: float | None
    constraints_checked: int
    actions_taken: int


@dataclass(frozen=True)
class SyncerFlushed:
    at: datetime
    kind: str
    rows: int
    ok: bool
    duration_s: float
    queued: int
    inbox_length: int
    in_flight: int
    time_in_queue_s: tuple[float, ...]
    time_in_inbox_s: tuple[float, ...]


@dataclass(frozen=True)
class WebhookDelivered:
    at: datetime
    integration: str
    ok: bool
    retries: int
    duration_s: float
    inbox_length: int


@dataclass(frozen=True)
class DatabaseError:
    at: datetime
    component: str
    error: str


# --- webhook handler inbox ----------------------------------------------------------------


@dataclass(frozen=True)
class DeliverWebhook:
    """Send a notification about a run; never blocks the sender."""

    integration: str | None  # a configured integration's name, or None with `url`
    url: str | None
    trigger: str
    run_id: str | None
    job_id: int | None
    variables: dict[str, Any]
    at: datetime
    template: str | None = None
    body: str | None = None  # the rendered template: sent as it is instead of the JSON
    headers: dict[str, str] = field(default_factory=dict)  # the action's own headers
    action_run_id: int | None = None  # the action run to complete with the outcome
    # The action's alert policy (itinerary/webhooks/policy.py); None: alert every time.
    policy: dict[str, Any] | None = None
    # alert (a run failed or violated), attempt (an attempt failed, a retry follows),
    # recovery (the job succeeded: resolve or say so if an alert is open).
    kind: str = "alert"


@dataclass(frozen=True)
class IntegrationsChanged:
    """An integration was saved, deleted or tested: the handler reloads it."""

    name: str
    at: datetime


@dataclass(frozen=True)
class ShutDown:
    """Sentinel put on an inbox to stop its component after it has drained."""

    at: datetime | None = None
