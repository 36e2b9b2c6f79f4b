"""Job routes: list, read, create, update, archive, pause/resume, skip next, next runs.

Reads go through `Database.read`; writes go through `itinerary.operations`
(shared with the web pages): the syncer stores, then the loop reschedules.
"""

from __future__ import annotations

import re
from typing import Any

import gevent

from itinerary import jobfiles, jobpages, operations, pagination, queries
from itinerary.api import params
from itinerary.api.routing import Call, PathParam, Reply, Route
from itinerary.errors import invalid, not_found
from itinerary.jobs import JobSpec, ValidationError, parse_job
from itinerary.jsontext import iso

MAX_ID = 2**63 - 1
JOB_ID = PathParam("job_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "numeric job id")


def job_id_of(text: str) -> int:
    """A numeric job id from the path; 400 for a name, 404 for an id that cannot exist.

    Names are not taken here: a name may look like a run id (`/runs/{id}` takes both).
    """
    if not re.fullmatch(r"-?[0-9]+", text):
        raise invalid(
            {
                "job_id": f"takes a numeric job id, not a name: {text!r} is not one; "
                f"GET /api/v1/jobs?name_pattern={text} shows the job's id"
            }
        )
    if not re.fullmatch(r"[0-9]{1,19}", text) or not 0 < int(text) <= MAX_ID:
        raise not_found(f"job {text!r}")
    return int(text)


def load_job(call: Call, text: str, *, live: bool = False) -> JobSpec:
    """The job named by `text` in the path (archived ones too unless `live`), or 404/409."""
    return operations.load_job(call.ctx, job_id_of(text), live=live)


def save(call: Call, spec: JobSpec) -> JobSpec:
    """Store through the syncer, then tell the loop; 409 on a duplicate name."""
    return operations.save_job(call.ctx, spec, call.now, call.actor)


def _parse(body: Any, base: JobSpec | None = None) -> JobSpec:
    try:
        return parse_job(body, base=base)
    except ValidationError as exc:
        raise invalid(exc.fields) from None


# --- handlers ------------------------------------------------------------------------------


def list_jobs(call: Call) -> Any:
    q = call.query
    enabled = None if q["enabled"] is None else q["enabled"] == "true"
    export = q["format"] == "yaml"
    f = queries.JobFilter(
        name_pattern=q["name_pattern"],
        tags=tuple(q["tags"] or ()),
        tag_pattern=q["tag_pattern"],
        schedule=q["schedule"],
        enabled=enabled,
        include_archived=q["archived"],
        limit=None if export else q["limit"],
        cursor=None if export else q["cursor"],
    )
    if not export:
        items, cursor = call.ctx.database.read(jobpages.page, f)
        return pagination.raw_page(items, cursor)
    versions, _ = call.ctx.database.read(queries.list_jobs, f)
    # PyYAML's dumper is pure Python: 1,000 jobs take half a second, which on the hub
    # would stall the scheduler loop; in a worker thread the hub keeps its turns (GIL).
    specs = [v.spec for v in versions]
    text = gevent.get_hub().threadpool.apply(jobfiles.export_yaml, (specs,))
    return Reply(200, text, "application/yaml")


def get_job(call: Call) -> Any:
    return load_job(call, call.path["job_id"]).public_dict()


def create_job(call: Call) -> Any:
    stored = save(call, _parse(call.body))
    return Reply(201, stored.public_dict(), headers={"Location": f"jobs/{stored.id}"})


def update_job(call: Call) -> Any:
    job = load_job(call, call.path["job_id"], live=True)
    if isinstance(call.body, dict) and call.body.get("id") not in (None, job.id):
        raise invalid({"id": f"does not match the job in the path ({job.id})"})
    return save(call, _parse(call.body, base=job)).public_dict()


def archive_job(call: Call) -> Any:
    operations.archive_job(call.ctx, job_id_of(call.path["job_id"]), call.now, call.actor)
    return Reply(204)


def _reason(call: Call) -> str | None:
    """The optional `reason` of a body holding nothing else (pause, skip next)."""
    body = call.body or {}
    unknown = sorted(set(body) - {"reason"}) if isinstance(body, dict) else ["body"]
    if unknown:
        raise invalid({k: "unknown field" for k in unknown})
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise invalid({"reason": "must be a string of at most 500 characters"})
    return reason


def pause_job(call: Call) -> Any:
    reason = _reason(call)
    job = load_job(call, call.path["job_id"], live=True)
    return operations.pause_job(call.ctx, job, reason, call.now, call.actor).public_dict()


def skip_next(call: Call) -> Any:
    reason = _reason(call)
    job = load_job(call, call.path["job_id"], live=True)
    slot = operations.skip_next(call.ctx, job, reason, call.now, call.actor)
    return {"jobId": job.id, "scheduledAt": iso(slot)}


def resume_job(call: Call) -> Any:
    job = load_job(call, call.path["job_id"], live=True)
    return operations.resume_job(call.ctx, job, call.now, call.actor).public_dict()


def next_runs(call: Call) -> Any:
    job = load_job(call, call.path["job_id"])
    after = call.query["from"] or call.now
    cron = job.cron
    return {
        "jobId": job.id,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "enabled": job.enabled and job.archived_at is None,
        "description": cron.describe() if cron else "manual only (no schedule)",
        "nextRuns": [iso(t) for t in cron.next_n(after, call.query["count"])] if cron else [],
    }


# `format=yaml`: a document `apply -f` reads back, {"jobs": [job definitions]}.
EXPORT_SCHEMA = {
    "type": "object",
    "required": ["jobs"],
    "properties": {"jobs": {"type": "array", "items": {"type": "object"}}},
}
JOB_LIST_PARAMS = (
    params.string("name_pattern", "job name glob (`*`, `?`); without a wildcard, a substring"),
    params.csv("tags", "jobs carrying all of these tags"),
    params.string("tag_pattern", "jobs with a tag matching this glob"),
    params.string("schedule", "jobs with exactly this cron expression (empty: manual-only jobs)"),
    params.choice("enabled", "only enabled (true) or paused (false) jobs", ("true", "false"), None),
    params.boolean("archived", "include archived jobs"),
    params.choice(
        "format", "yaml: every matching job as an apply-able document", ("json", "yaml"), "json"
    ),
    params.LIMIT,
    params.CURSOR,
)

ROUTES = (
    Route(
        "GET",
        "/jobs",
        list_jobs,
        "viewer",
        "List jobs",
        "jobs",
        response="JobPage",
        params=JOB_LIST_PARAMS,
        alt_content={"application/yaml": EXPORT_SCHEMA},
    ),
    Route(
        "POST",
        "/jobs",
        create_job,
        "admin",
        "Create a job",
        "jobs",
        ok=201,
        response="Job",
        body="JobInput",
        errors=(409,),
    ),
    Route(
        "GET",
        "/jobs/{job_id}",
        get_job,
        "viewer",
        "Get a job",
        "jobs",
        response="Job",
        path_params=(JOB_ID,),
        errors=(404,),
    ),
    Route(
        "PUT",
        "/jobs/{job_id}",
        update_job,
        "admin",
        "Update a job (fields left out keep their value)",
        "jobs",
        response="Job",
        path_params=(JOB_ID,),
        body="JobInput",
        errors=(404, 409),
    ),
    Route(
        "DELETE",
        "/jobs/{job_id}",
        archive_job,
        "admin",
        "Archive a job (its runs are kept)",
        "jobs",
        ok=204,
        path_params=(JOB_ID,),
        errors=(404,),
    ),
    Route(
        "POST",
        "/jobs/{job_id}/pause",
        pause_job,
        "operator",
        "Pause a job",
        "jobs",
        response="Job",
        path_params=(JOB_ID,),
        body="PauseInput",
        body_required=False,
        errors=(404, 409),
    ),
    Route(
        "POST",
        "/jobs/{job_id}/resume",
        resume_job,
        "operator",
        "Resume a paused job",
        "jobs",
        response="Job",
        path_params=(JOB_ID,),
        errors=(404, 409),
    ),
    Route(
        "POST",
        "/jobs/{job_id}/skip-next",
        skip_next,
        "operator",
        "Skip the job's next scheduled run (it is recorded as skipped, with the reason)",
        "jobs",
        response="SkippedSlot",
        path_params=(JOB_ID,),
        body="PauseInput",
        body_required=False,
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/jobs/{job_id}/next-runs",
        next_runs,
        "viewer",
        "The job's next scheduled times",
        "jobs",
        response="NextRuns",
        path_params=(JOB_ID,),
        errors=(404,),
        params=(
            params.integer("count", "how many", default=10, lo=1, hi=100),
            params.time("from", "compute after this time (default now)"),
        ),
    ),
)
