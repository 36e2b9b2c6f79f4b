"""The peewee models: one class per table of migrations/*/001_initial.sql and after.

Apart from the connections (itinerary/db.py): a model says what a row is, db.py how
to reach the database without blocking the hub. Models are bound to `proxy`, which
`bind` points at the reader; the syncer passes the writer explicitly
(`query.execute(db.writer)`). Times are aware UTC in Python and naive UTC in every
dialect (`UTCDateTimeField`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import peewee as pw

from itinerary.db import Database

proxy = pw.DatabaseProxy()


class UTCDateTimeField(pw.DateTimeField):
    """Aware UTC in Python, naive UTC in the database (every dialect the same)."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class JSONField(pw.TextField):
    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        database = proxy
        legacy_table_names = False


class ConstraintType(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField(unique=True)

    class Meta:
        table_name = "constraint_types"


class ActionType(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField(unique=True)

    class Meta:
        table_name = "action_types"


class Job(BaseModel):
    id = pw.BigAutoField()
    name = pw.CharField()
    active_name = pw.CharField(null=True, unique=True)
    description = pw.TextField(default="")
    schedule = pw.CharField(null=True)
    timezone = pw.CharField(default="UTC")
    enabled = pw.BooleanField(default=True)
    paused_reason = pw.TextField(null=True)
    namespace = pw.CharField(default="default")
    images = JSONField(default=list)
    commands = JSONField(default=list)
    args = JSONField(default=list)
    service_accounts = JSONField(default=list)
    env = JSONField(default=dict)
    env_secret = JSONField(null=True)
    resources = JSONField(null=True)
    pod_spec = JSONField(null=True)
    constraints = JSONField(default=dict)  # constraint_type_id (as text) -> config
    manually_runnable = pw.BooleanField(default=True)
    manual_run_modifiable_fields = JSONField(default=list)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    archived_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "job"


class JobTag(BaseModel):
    job_id = pw.BigIntegerField()
    tag = pw.CharField()

    class Meta:
        table_name = "job_tags"
        primary_key = pw.CompositeKey("job_id", "tag")


class JobAction(BaseModel):
    id = pw.BigAutoField()
    job_id = pw.BigIntegerField()
    position = pw.IntegerField(default=0)
    action_type_id = pw.IntegerField()
    trigger = pw.CharField()
    constraint_type_id = pw.IntegerField(null=True)
    config = JSONField(default=dict)

    class Meta:
        table_name = "job_actions"


class JobRun(BaseModel):
    job_id = pw.BigIntegerField()
    scheduled_at = UTCDateTimeField()
    run_id = pw.CharField(unique=True)
    trigger = pw.CharField(default="schedule")
    attempt = pw.IntegerField(default=1)
    status = pw.CharField()
    success = pw.BooleanField(null=True)
    reason = pw.TextField(null=True)
    error = pw.TextField(null=True)
    exit_code = pw.IntegerField(null=True)
    started_at = UTCDateTimeField(null=True)
    completed_at = UTCDateTimeField(null=True)
    behind_schedule = pw.BooleanField(default=False)
    args = JSONField(null=True)
    executor = pw.CharField(null=True)
    handle = JSONField(null=True)
    parent_run_id = pw.CharField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    overrides = JSONField(null=True)  # a manual run's resources/env (migration 010)

    class Meta:
        table_name = "job_run"
        primary_key = pw.CompositeKey("job_id", "scheduled_at")


class RunAttempt(BaseModel):
    run_id = pw.CharField()
    attempt = pw.IntegerField()
    status = pw.CharField()
    started_at = UTCDateTimeField(null=True)
    completed_at = UTCDateTimeField(null=True)
    exit_code = pw.IntegerField(null=True)
    error = pw.TextField(null=True)
    executor = pw.CharField(null=True)
    handle = JSONField(null=True)

    class Meta:
        table_name = "run_attempts"
        primary_key = pw.CompositeKey("run_id", "attempt")


class ConstraintViolation(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    run_id = pw.CharField()
    constraint_type_id = pw.IntegerField()
    violation_time = UTCDateTimeField()
    details = JSONField(default=dict)

    class Meta:
        table_name = "constraint_violations"


class ActionRun(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    run_id = pw.CharField()
    action_type_id = pw.IntegerField()
    trigger = pw.CharField()
    constraint_violation_id = pw.BigIntegerField(null=True)
    executed_at = UTCDateTimeField()
    success = pw.BooleanField()
    error = pw.TextField(null=True)
    details = JSONField(default=dict)

    class Meta:
        table_name = "action_runs"


class _Stats(BaseModel):
    stats_period_id = pw.BigIntegerField(primary_key=True)
    start_time = UTCDateTimeField()
    end_time = UTCDateTimeField()


class SchedulerStats(_Stats):
    iterations = pw.IntegerField(default=0)
    run_jobs = pw.IntegerField(default=0)
    late_jobs = pw.IntegerField(default=0)
    time_passed_run_time = pw.FloatField(default=0)
    missed_jobs = pw.IntegerField(default=0)
    time_passed_grace_period = pw.FloatField(default=0)
    jobs_cancelled = pw.IntegerField(default=0)
    min_inbox_length = pw.IntegerField(default=0)
    max_inbox_length = pw.IntegerField(default=0)
    avg_inbox_length = pw.FloatField(default=0)
    empty_inbox_time = pw.FloatField(default=0)
    avg_time_in_inbox = pw.FloatField(default=0)
    min_time_in_inbox = pw.FloatField(default=0)
    max_time_in_inbox = pw.FloatField(default=0)

    class Meta:
        table_name = "scheduler_stats"


class OrchestratorStats(BaseModel):
    run_id = pw.CharField()
    stats_period_id = pw.BigIntegerField()
    runtime = pw.FloatField(null=True)
    constraints_checked = pw.IntegerField(default=0)
    actions_taken = pw.IntegerField(default=0)

    class Meta:
        table_name = "orchestrator_stats"
        primary_key = pw.CompositeKey("run_id", "stats_period_id")


class SyncerStats(_Stats):
    total_writes = pw.IntegerField(default=0)
    writes_succeeded = pw.IntegerField(default=0)
    writes_failed = pw.IntegerField(default=0)
    avg_writes_in_flight = pw.FloatField(default=0)
    max_writes_in_flight = pw.IntegerField(default=0)
    min_writes_in_flight = pw.IntegerField(default=0)
    avg_queued_writes = pw.FloatField(default=0)
    max_queued_writes = pw.IntegerField(default=0)
    min_queued_writes = pw.IntegerField(default=0)
    avg_inbox_length = pw.FloatField(default=0)
    max_inbox_length = pw.IntegerField(default=0)
    min_inbox_length = pw.IntegerField(default=0)
    avg_time_in_write_queue = pw.FloatField(default=0)
    max_time_in_write_queue = pw.FloatField(default=0)
    min_time_in_write_queue = pw.FloatField(default=0)
    avg_time_in_inbox = pw.FloatField(default=0)
    max_time_in_inbox = pw.FloatField(default=0)
    min_time_in_inbox = pw.FloatField(default=0)

    class Meta:
        table_name = "syncer_stats"


class WebhookDelivery(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    run_id = pw.CharField(null=True)
    webhook_type = pw.CharField()
    trigger = pw.CharField()
    url = pw.TextField()
    attempt_count = pw.IntegerField(default=0)
    status_code = pw.IntegerField(null=True)
    success = pw.BooleanField(default=False)
    error = pw.TextField(null=True)
    request_duration = pw.FloatField(null=True)
    created_at = UTCDateTimeField()
    delivered_at = UTCDateTimeField(null=True)
    integration = pw.CharField(null=True)
    delivery_key = pw.CharField(null=True)
    outcome = pw.CharField(null=True)
    response = pw.TextField(null=True)

    class Meta:
        table_name = "webhook_deliveries"


class Integration(BaseModel):
    """A named notification integration (itinerary/webhooks/store.py); config holds secrets."""

    id = pw.BigAutoField()
    name = pw.CharField(unique=True)
    type = pw.CharField()
    config = JSONField()
    broken_reason = pw.TextField(null=True)
    broken_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "integrations"


class WebhookHandlerStats(_Stats):
    webhooks_sent = pw.IntegerField(default=0)
    webhooks_succeeded = pw.IntegerField(default=0)
    webhooks_failed = pw.IntegerField(default=0)
    total_retries = pw.IntegerField(default=0)
    avg_delivery_time = pw.FloatField(default=0)
    max_delivery_time = pw.FloatField(default=0)
    min_delivery_time = pw.FloatField(default=0)
    avg_inbox_length = pw.FloatField(default=0)
    max_inbox_length = pw.IntegerField(default=0)
    min_inbox_length = pw.IntegerField(default=0)

    class Meta:
        table_name = "webhook_handler_stats"


class ApiToken(BaseModel):
    id = pw.BigAutoField()
    name = pw.CharField(unique=True)
    role = pw.CharField()
    token_hash = pw.CharField(unique=True)
    created_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"


class SchedulerLease(BaseModel):
    """Which process schedules on this database, until when (itinerary/lease.py)."""

    name = pw.CharField(primary_key=True)
    holder = pw.CharField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "scheduler_lease"


MODELS = (
    ConstraintType,
    ActionType,
    Job,
    JobTag,
    JobAction,
    JobRun,
    RunAttempt,
    ConstraintViolation,
    ActionRun,
    SchedulerStats,
    OrchestratorStats,
    SyncerStats,
    WebhookDelivery,
    WebhookHandlerStats,
    ApiToken,
    SchedulerLease,
    Integration,
)


def tuples(query: Any) -> Iterator[tuple[Any, ...]]:
    """`query.tuples()`, typed as the tuples it yields (peewee's stubs say model instances)."""
    return iter(query.tuples())


def bind(database: Database) -> None:
    """Point the models at `database`'s reader (writes pass `database.writer` explicitly)."""
    proxy.initialize(database.reader)
