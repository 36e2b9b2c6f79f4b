"""A job's events feed: what happened to it and around it, newest first, one list.

Merges six sources (read connection, call through `Database.read`): constraint
violations, actions taken and webhook deliveries of the job's runs (joined from the
job's own `job_run` rows, a primary-key range, to the run_id indexes), anomalies
(by job and time), definition changes (`job_audit`), and state flips derived here
from the job's finished runs: healthy → failing when a run fails (failed, killed,
missed, lost) after a success, failing → healthy on the next success. Pages go back
in time with `before` (exclusive), `limit` items each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from itinerary import audit, states
from itinerary.history import Anomaly
from itinerary.jobstore import ACTION_NAMES, CONSTRAINT_NAMES
from itinerary.models import ActionRun, ConstraintViolation, JobRun, WebhookDelivery, tuples

TYPES = ("violation", "action", "delivery", "anomaly", "flip", "change")
FAILING = (states.FAILED, states.KILLED, states.MISSED, states.LOST)
FLIP_SCAN = 2000  # finished runs read to find flips, per page


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _of_runs(model: Any, at: Any, job_id: int, before: datetime | None, limit: int) -> Any:
    """The newest rows of `model` (a per-run table, timed by `at`) for the job's runs."""
    q = model.select(model).join(JobRun, on=(JobRun.run_id == model.run_id))
    q = q.where(JobRun.job_id == job_id)
    if before is not None:
        q = q.where(at < before)
    return q.order_by(at.desc()).limit(limit)


def _violations(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    time = ConstraintViolation.violation_time
    rows = _of_runs(ConstraintViolation, time, job_id, before, limit)
    return [
        {
            "type": "violation",
            "at": v.violation_time,
            "runId": v.run_id,
            "summary": CONSTRAINT_NAMES.get(v.constraint_type_id, str(v.constraint_type_id))
            + " violated",
            "details": v.details,
        }
        for v in rows
    ]


def _actions(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    rows = _of_runs(ActionRun, ActionRun.executed_at, job_id, before, limit)
    return [
        {
            "type": "action",
            "at": a.executed_at,
            "runId": a.run_id,
            "summary": f"{ACTION_NAMES.get(a.action_type_id, a.action_type_id)} on {a.trigger}: "
            + ("done" if a.success else f"failed ({a.error or 'no error recorded'})"),
            "details": a.details,
        }
        for a in rows
    ]


def _deliveries(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    rows = _of_runs(WebhookDelivery, WebhookDelivery.created_at, job_id, before, limit)
    return [
        {
            "type": "delivery",
            "at": d.created_at,
            "runId": d.run_id,
            "summary": f"{d.webhook_type} alert on {d.trigger}: "
            + (
                f"delivered ({d.status_code})"
                if d.success
                else f"failed ({d.status_code or d.error or 'no answer'})"
            ),
            "details": {"statusCode": d.status_code, "attempts": d.attempt_count},
        }
        for d in rows
    ]


def _anomalies(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    q = Anomaly.select().where(Anomaly.job_id == job_id)
    if before is not None:
        q = q.where(Anomaly.detected_at < before)
    rows = q.order_by(Anomaly.detected_at.desc()).limit(limit)
    return [
        {
            "type": "anomaly",
            "at": a.detected_at,
            "runId": a.run_id,
            "summary": a.explanation,
            "details": {"kind": a.kind, "score": a.score},
        }
        for a in rows
    ]


def _changes(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    out = []
    for r in audit.of_job(job_id, before, limit):
        what = r["action"] + (f": {', '.join(r['changes'])}" if r["action"] == "edited" else "")
        out.append(
            {
                "type": "change",
                "at": r["at"],
                "runId": None,
                "summary": f"{what} by {r['actor']}",
                "details": {"actor": r["actor"], "action": r["action"], "fields": r["changes"]},
            }
        )
    return out


def _flips(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Status flips among the latest finished runs before `before`, oldest first in scan."""
    q = JobRun.select(JobRun.run_id, JobRun.status, JobRun.scheduled_at, JobRun.completed_at).where(
        (JobRun.job_id == job_id) & JobRun.status.in_([states.SUCCEEDED, *FAILING])
    )
    if before is not None:
        q = q.where(JobRun.scheduled_at < before)
    rows = list(tuples(q.order_by(JobRun.scheduled_at.desc()).limit(FLIP_SCAN)))
    rows.reverse()
    out: list[dict[str, Any]] = []
    last: str | None = None
    for run_id, status, scheduled, completed in rows:
        now_state = "healthy" if status == states.SUCCEEDED else "failing"
        if last is not None and now_state != last:
            at = completed or scheduled
            if before is None or at < before:
                out.append(
                    {
                        "type": "flip",
                        "at": at,
                        "runId": run_id,
                        "summary": f"{last.capitalize()} → {now_state.capitalize()} ({status})",
                        "details": {"from": last, "to": now_state},
                    }
                )
        last = now_state
    return out[-limit:]


SOURCES = {
    "violation": _violations,
    "action": _actions,
    "delivery": _deliveries,
    "anomaly": _anomalies,
    "flip": _flips,
    "change": _changes,
}


def job_events(
    job_id: int, types: tuple[str, ...], before: datetime | None, limit: int
) -> dict[str, Any]:
    """`{"items": [...], "nextBefore": ...}`: the newest `limit` events before `before`."""
    items: list[dict[str, Any]] = []
    for kind in types or TYPES:
        items.extend(SOURCES[kind](job_id, before, limit + 1))
    items.sort(key=lambda e: (e["at"], TYPES.index(e["type"])), reverse=True)
    more = len(items) > limit
    items = items[:limit]
    for item in items:
        item["at"] = _iso(item["at"])
    return {"items": items, "nextBefore": items[-1]["at"] if more and items else None}
