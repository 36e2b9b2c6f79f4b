"""`GET /jobs/{id}/events`: a job's merged events feed (itinerary/jobevents.py), paginated."""

from __future__ import annotations

from typing import Any

from itinerary import jobevents
from itinerary.api import params
from itinerary.api.jobs import JOB_ID, load_job
from itinerary.api.routing import Call, Route


def job_events(call: Call) -> Any:
    job = load_job(call, call.path["job_id"])
    q = call.query
    found = call.ctx.database.read(
        jobevents.job_events, job.id, tuple(q["type"] or ()), q["before"], q["limit"]
    )
    return {"jobId": job.id, **found}


ROUTES = (
    Route(
        "GET",
        "/jobs/{job_id}/events",
        job_events,
        "viewer",
        "A job's events, newest first: constraint violations, actions, alerts sent, anomalies, "
        "state flips and definition changes (with who made them)",
        "jobs",
        response="JobEventList",
        path_params=(JOB_ID,),
        params=(
            params.csv("type", "only these kinds of event", jobevents.TYPES),
            params.time("before", "events before this time (the previous page's nextBefore)"),
            params.integer("limit", "at most this many", default=50, lo=1, hi=500),
        ),
        errors=(404,),
    ),
)
