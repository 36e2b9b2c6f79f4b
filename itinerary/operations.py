"""The write operations the JSON API and the web pages both perform.

Each one sends a command to the component that owns the data and waits for its
reply: job definitions go to the syncer (`SaveJob`, `ArchiveJob`), then to the
scheduler (`JobUpserted`, `JobRemoved`) so the loop reschedules at once; manual
runs and cancellations go to the scheduler (`RunNow`, `CancelRun`), which owns
every active run. Whatever goes to the scheduler goes through `commands.send`: the
local loop on the leader, the `commands` table from a standby. Refusals are
`ApiError`s with the status both front ends show.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import gevent

from itinerary import audit, commands, jobchecks, jobstore, messages, queries
from itinerary.context import Context
from itinerary.errors import ApiError, invalid, not_found
from itinerary.jobs import MODIFIABLE_FIELDS, JobSpec, ValidationError, parse_job

REPLY_TIMEOUT_S = 10.0
OVERRIDES = MODIFIABLE_FIELDS  # what a manual run may override


def wait_reply(result: Any, what: str) -> Any:
    """The value of a component's reply, or 503 when it does not answer in time."""
    try:
        return result.get(timeout=REPLY_TIMEOUT_S)
    except gevent.Timeout:
        raise ApiError(503, f"{what} did not answer within {REPLY_TIMEOUT_S:g}s") from None


def load_job(ctx: Context, job_id: int, *, live: bool = False) -> JobSpec:
    """The job (archived ones too unless `live`), or 404/409."""
    job = ctx.database.read(jobstore.get_job, job_id)
    if job is None:
        raise not_found(f"job {job_id}")
    if live and job.archived_at is not None:
        raise ApiError(409, f"job {job_id} is archived", code="archived")
    return job


def save_job(ctx: Context, spec: JobSpec, now: datetime, actor: str = "unknown") -> JobSpec:
    """Store through the syncer (with its job_audit record), then tell the loop; 409 on a
    duplicate name, 400 on a cycle. `actor` is who asked (audit.py)."""
    if any(a.type == "kickOffJob" for a in spec.actions):  # only then can it close a cycle
        others = ctx.database.read(jobstore.load_jobs)
        mine = [j for j in others if j.id != spec.id and j.name != spec.name] + [spec]
        cycle = jobchecks.kickoff_cycle(mine)
        if cycle is not None:
            raise invalid({"actions": jobchecks.cycle_message(cycle)})
    before = ctx.database.read(jobstore.get_job, spec.id) if spec.id is not None else None
    msg = messages.SaveJob(spec, now, audit=audit.entry_for(before, spec, actor))
    ctx.queues.syncer.put(msg)
    try:
        stored: JobSpec = wait_reply(msg.reply, "the syncer")
    except jobstore.Conflict as exc:
        raise ApiError(
            409, str(exc), fields={"name": str(exc)} if "named" in str(exc) else {}
        ) from None
    _forget(stored.id)  # after the commit too: no read in between cached the old one
    commands.send(ctx, messages.JobUpserted(stored, now))
    return stored


def _forget(job_id: int | None) -> None:
    """Drop the job's cached JSON (`itinerary/jobpages.py`; imported here: a circle else)."""
    from itinerary import jobpages

    jobpages.forget(job_id)


def archive_job(ctx: Context, job_id: int, now: datetime, actor: str = "unknown") -> None:
    msg = messages.ArchiveJob(job_id, now, audit=audit.Entry(actor, "archived"))
    ctx.queues.syncer.put(msg)
    if not wait_reply(msg.reply, "the syncer"):
        raise not_found(f"live job {job_id}")
    _forget(job_id)
    commands.send(ctx, messages.JobRemoved(job_id, now))


def pause_job(
    ctx: Context, job: JobSpec, reason: str | None, now: datetime, actor: str = "unknown"
) -> JobSpec:
    return save_job(ctx, replace(job, enabled=False, paused_reason=reason or None), now, actor)


def resume_job(ctx: Context, job: JobSpec, now: datetime, actor: str = "unknown") -> JobSpec:
    return save_job(ctx, replace(job, enabled=True, paused_reason=None), now, actor)


def skip_next(
    ctx: Context, job: JobSpec, reason: str | None, now: datetime, actor: str = "unknown"
) -> datetime:
    """Skip the job's next scheduled run (recorded `skipped` with the reason); its slot.

    The loop that owns the schedule picks the slot (through the leader from a standby);
    409 when the job is paused or archived, or has no schedule. The UI's button calls this.
    """
    if job.archived_at is not None:
        raise ApiError(409, f"job {job.id} is archived", code="archived")
    if not job.enabled:
        raise ApiError(409, f"job {job.id} is paused: no next run to skip", code="paused")
    if job.cron is None:
        raise ApiError(409, f"job {job.id} has no schedule: no next run to skip", code="no_next")
    msg = messages.SkipNext(job.id or 0, reason or f"skipped by {actor}", now)
    commands.send(ctx, msg)
    try:
        slot = wait_reply(msg.reply, "the scheduler")
    except KeyError as exc:
        raise not_found(str(exc.args[0]) if exc.args else f"job {job.id}") from None
    except ValueError as exc:
        raise ApiError(409, str(exc), code="no_next") from None
    return slot if isinstance(slot, datetime) else datetime.fromisoformat(slot)


def check_overrides(given: dict[str, Any], job: JobSpec) -> dict[str, Any]:
    """The overrides, each allowed by the job and valid like the job's own field."""
    refused = {
        k: "not modifiable for manual runs of this job"
        for k in given
        if k not in job.manual_run_modifiable_fields
    }
    if refused:
        raise ApiError(
            403,
            "this job does not allow overriding " + ", ".join(refused),
            code="not_modifiable",
            fields=refused,
        )
    try:
        parse_job(given, base=job)
    except ValidationError as exc:
        raise invalid(
            {k: v for k, v in exc.fields.items() if k.split(".")[0] in given} or exc.fields
        ) from None
    return given


def run_now(
    ctx: Context,
    job: JobSpec,
    overrides: dict[str, Any],
    start_at: datetime | None,
    now: datetime,
) -> str:
    """Start a run of a manually runnable job with checked overrides; its run id.

    The loop answers once the run's row is committed, so `GET /runs/{id}` finds it at once.
    """
    if not job.manually_runnable:
        raise ApiError(403, f"job {job.name!r} is not manually runnable", code="not_runnable")
    overrides = dict(check_overrides(overrides, job))
    args = overrides.pop("args", None)
    msg = messages.RunNow(
        job_id=job.id,
        at=now,
        start_at=start_at,
        args=None if args is None else tuple(args),
        overrides=overrides,
    )
    commands.send(ctx, msg)
    try:
        run_id: str = wait_reply(msg.reply, "the scheduler")
    except KeyError as exc:
        raise not_found(str(exc.args[0]) if exc.args else f"job {job.id}") from None
    except ValueError as exc:
        raise ApiError(403, str(exc), code="not_runnable") from None
    return run_id


def cancel_run(ctx: Context, run_id: str, reason: str, now: datetime) -> None:
    """Ask the loop to kill the run's workload; 404 if unknown, 409 if it is not active."""
    row = ctx.database.read(queries.get_run_row, run_id)
    if row is None:
        raise not_found(f"run {run_id}")
    msg = messages.CancelRun(run_id, reason, now)
    commands.send(ctx, msg)
    if not wait_reply(msg.reply, "the scheduler"):
        row = ctx.database.read(queries.get_run_row, run_id)
        raise ApiError(
            409,
            f"run {run_id} is {row.status}, not active",
            code="not_active",
            fields={"state": row.status},
        )
