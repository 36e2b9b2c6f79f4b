"""The constraints checked around a run's workload, one function per constraint.

Before the start (after the slot is claimed, before the executor), in this order:
`maxConcurrentRuns` (the loop admits runs one request at a time, with the job's
overlap policy), `requirePreviousSuccess` (the dependency's latest run, read from
the database), `preRunHook` (the user's endpoint). After a workload succeeded:
`postRunHook`. A check returns `None` (go on) or a `Held` with the reason the
run's record shows and the details its violation row keeps; the orchestrator
(run.py) records the violation, takes the `on_violation` actions and ends the run.

Every check runs on the run's own greenlet: a cohort hands runs with checks over
before starting them, so a slow hook or a wait never delays another run.
catchUp/catchUpWindow (run.py, missed slots) and maxExpectedRunTime /
maxAllowedRunTime (run.py, following the workload) are decided where they apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from itinerary import states
from itinerary.durations import format_duration, parse_duration
from itinerary.jobs import JobSpec
from itinerary.messages import AdmitRun
from itinerary.models import Job, JobRun
from itinerary.orchestrator import hooks

if TYPE_CHECKING:
    from itinerary.orchestrator.run import Orchestrator

# How often a run queued for a place (overlap "queue"/"replace") asks the loop again, and
# how often requirePreviousSuccess with `wait` looks at the dependency again.
RECHECK_S = 5.0
DEPENDENCY_SCAN = 200  # dependency runs read to find the latest with the given args


@dataclass(frozen=True)
class Held:
    """Why a run may not start (or did not succeed): its reason and its violation row."""

    constraint: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def concurrency(job: JobSpec) -> tuple[int, str, int] | None:
    """maxConcurrentRuns as (limit, overlap policy, queueLimit), or None when unset."""
    value = job.constraints.get("maxConcurrentRuns")
    if value is None:
        return None
    if isinstance(value, int):
        return value, "skip", 0
    overlap = value.get("overlap", "skip")
    return value["limit"], overlap, value.get("queueLimit", 10) if overlap == "queue" else 0


def context(o: Orchestrator) -> dict[str, Any]:
    """The run's context: what hooks get as their JSON body."""
    slot = o.slot
    return {
        "jobName": slot.job.name,
        "jobId": slot.job.id,
        "runId": slot.run_id,
        "scheduledAt": _iso(slot.scheduled_at),
        "attempt": o.attempt,
        "trigger": slot.trigger,
        "args": list(slot.effective_args),
    }


# --- before the start ---------------------------------------------------------------------


def check_concurrency(o: Orchestrator) -> Held | None:
    """maxConcurrentRuns with its overlap policy; the loop owns the list of active runs."""
    limit, overlap, queue_limit = concurrency(o.slot.job) or (0, "skip", 0)
    o.constraints_checked += 1
    interval = min(RECHECK_S, o.config.loop_interval)
    queued = False
    while True:
        msg = AdmitRun(o.slot.run_id, o.slot.job_id, limit, overlap, queue_limit, o.clock.now())
        o.queues.scheduler.put(msg)
        decision, running = msg.reply.get()
        if decision == "start":
            return None
        if decision == "full":
            reason = f"maxConcurrentRuns {limit} reached: {', '.join(running)} still running"
            if overlap == "queue":
                reason += f", and queueLimit {queue_limit} runs already wait"
            return Held("maxConcurrentRuns", reason, {"limit": limit, "running": running})
        if not queued:  # "queue": wait for a place (replace: the oldest is being killed)
            queued = True
            why = "replacing" if overlap == "replace" else "queued behind"
            o.record_waiting(f"maxConcurrentRuns {limit}: {why} {', '.join(running)}")
        if not o.pause(interval):
            return None  # cancelled, skipped or released: the caller ends the run


def check_previous_success(o: Orchestrator) -> Held | None:
    """requirePreviousSuccess: the dependency's latest run (at or before this slot) succeeded."""
    config = o.slot.job.constraints["requirePreviousSuccess"]
    if isinstance(config, str):
        config = {"job": config}
    wait = parse_duration(config["wait"]) if "wait" in config else 0.0
    deadline = o.clock.now() + timedelta(seconds=wait)
    o.constraints_checked += 1
    waited = False
    while True:
        held = _dependency(o, config)
        if held is None:
            return None
        left = (deadline - o.clock.now()).total_seconds()
        if left <= 0:
            return held
        if not waited:
            waited = True
            o.record_waiting(f"{held.reason}; waiting up to {format_duration(wait)}")
        if not o.pause(min(RECHECK_S, left)):
            return None


def _dependency(o: Orchestrator, config: dict[str, Any]) -> Held | None:
    slot = o.slot
    args = tuple(config["args"]) if "args" in config else None
    within = parse_duration(config["within"]) if "within" in config else None
    since = slot.scheduled_at - timedelta(seconds=within) if within is not None else None
    if o.database is None:
        raise RuntimeError("requirePreviousSuccess needs the database")
    name, run = o.database.read(
        latest_run, config["job"], slot.run_id, slot.scheduled_at, since, args
    )
    which = f"{name}{' with args ' + ' '.join(args) if args is not None else ''}"
    details: dict[str, Any] = {"job": name, "args": list(args) if args is not None else None}
    if run is None:
        limit = f" within {format_duration(within)}" if within is not None else ""
        reason = f"requirePreviousSuccess: {which} has no run{limit}"
        return Held("requirePreviousSuccess", reason, details)
    if run.status == states.SUCCEEDED:
        return None
    when = run.completed_at or run.scheduled_at
    reason = (
        f"requirePreviousSuccess: {which}'s last run {run.run_id} {run.status} at "
        f"{when.strftime('%Y-%m-%d %H:%M:%S')}Z"
    )
    details |= {"runId": run.run_id, "status": run.status, "at": _iso(when)}
    return Held("requirePreviousSuccess", reason, details)


def latest_run(
    job_ref: str | int,
    own_run_id: str,
    before: datetime,
    since: datetime | None,
    args: tuple[str, ...] | None,
) -> tuple[str, Any]:
    """(the job's name, its latest run scheduled in [since, before] with `args`, or None)."""
    if isinstance(job_ref, int):
        job = Job.get_or_none(Job.id == job_ref)
    else:
        job = Job.get_or_none(Job.active_name == job_ref)
    if job is None:
        return str(job_ref), None
    query = JobRun.select().where(
        (JobRun.job_id == job.id) & (JobRun.scheduled_at <= before) & (JobRun.run_id != own_run_id)
    )
    if since is not None:
        query = query.where(JobRun.scheduled_at >= since)
    for run in query.order_by(JobRun.scheduled_at.desc()).limit(DEPENDENCY_SCAN):
        if args is None or tuple(run.args or ()) == args:
            return job.name, run
    return job.name, None


def check_pre_run_hook(o: Orchestrator) -> Held | None:
    """preRunHook: the user's endpoint answers 200, or the run does not start."""
    config = _hook_config(o.slot.job.constraints["preRunHook"])
    o.constraints_checked += 1
    result = hooks.call(config, context(o), o.pause)
    if result.ok:
        return None
    return Held("preRunHook", result.reason("preRunHook"), result.details(config["url"]))


# Pre-execution checks in order, each with the constraint that turns it on. The hook comes
# last: it is the user's endpoint, called only when the run would otherwise start.
PRE_CHECKS: tuple[tuple[str, Callable[[Orchestrator], Held | None]], ...] = (
    ("maxConcurrentRuns", check_concurrency),
    ("requirePreviousSuccess", check_previous_success),
    ("preRunHook", check_pre_run_hook),
)


def pre_checks(job: JobSpec) -> tuple[Callable[[Orchestrator], Held | None], ...]:
    if not job.constraints:
        return ()
    return tuple(check for name, check in PRE_CHECKS if name in job.constraints)


# --- after the workload -------------------------------------------------------------------


def check_post_run_hook(o: Orchestrator, exit_code: int | None) -> Held | None:
    """postRunHook: called after the workload succeeded; not 200 fails the run."""
    raw = o.slot.job.constraints.get("postRunHook")
    if raw is None:
        return None
    config = _hook_config(raw)
    o.constraints_checked += 1
    body = context(o)
    runtime = None
    if o.started_at is not None:
        runtime = round((o.clock.now() - o.started_at).total_seconds(), 3)
    body |= {"exitCode": exit_code, "durationSeconds": runtime}
    result = hooks.call(config, body, o.pause)
    if result.ok:
        return None
    return Held("postRunHook", result.reason("postRunHook"), result.details(config["url"]))


def _hook_config(value: Any) -> dict[str, Any]:
    return {"url": value} if isinstance(value, str) else value


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
