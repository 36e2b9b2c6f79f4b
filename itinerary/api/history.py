"""Routes about what runs did: a run's events, a job's statistics and its anomalies.

Reads through `Database.read`, with the queries of `itinerary/history.py` and
`itinerary/jobstats.py` (kept outside the API so the web UI can use the same ones).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from itinerary import history, jobstats, pagination, queries
from itinerary.api import params
from itinerary.api.jobs import JOB_ID, load_job
from itinerary.api.routing import Call, Route
from itinerary.api.runs import RUN_ID, _run_id
from itinerary.errors import invalid, not_found

ANOMALY_LOOKBACK = timedelta(days=30)
ANOMALIES_KIND = "anomalies"


def run_events(call: Call) -> Any:
    run_id = _run_id(call)
    if call.ctx.database.read(queries.get_run_row, run_id) is None:
        raise not_found(f"run {run_id}")
    return {"runId": run_id, "items": call.ctx.database.read(history.events_of, run_id)}


def job_stats(call: Call) -> Any:
    job = load_job(call, call.path["job_id"])
    store = jobstats.rollup_store(call.ctx.queues.syncer, call.now)
    return jobstats.recent(call.ctx.database, job.stored_id, call.query["window"], call.now, store)


def job_anomalies(call: Call) -> Any:
    job = load_job(call, call.path["job_id"])
    since = call.query["since"] or call.now - ANOMALY_LOOKBACK
    key = pagination.decode(ANOMALIES_KIND, call.query["cursor"], (str, int))
    after = None
    if key is not None:
        try:
            after = (datetime.fromisoformat(key[0]), key[1])
        except ValueError:
            raise invalid({"cursor": "is not a cursor for this listing"}) from None
    limit = call.query["limit"]
    items, last = call.ctx.database.read(history.anomalies_of_job, job.id, since, limit, after)
    next_cursor = pagination.encode(ANOMALIES_KIND, last) if last else None
    return {"jobId": job.id, **pagination.page(items, next_cursor)}


ROUTES = (
    Route(
        "GET",
        "/runs/{run_id}/events",
        run_events,
        "viewer",
        "A run's life: every state change of the run and its attempts, in order",
        "runs",
        response="RunEventList",
        path_params=(RUN_ID,),
        errors=(404,),
    ),
    Route(
        "GET",
        "/jobs/{job_id}/stats",
        job_stats,
        "viewer",
        "A job's run statistics over a window: states, success rate, retries, durations",
        "jobs",
        response="JobStats",
        path_params=(JOB_ID,),
        params=(params.choice("window", "how far back", tuple(jobstats.WINDOWS), "24h"),),
        errors=(404,),
    ),
    Route(
        "GET",
        "/jobs/{job_id}/anomalies",
        job_anomalies,
        "viewer",
        "Unusual runs of a job (and slots with no run), newest first",
        "jobs",
        response="AnomalyPage",
        path_params=(JOB_ID,),
        params=(
            params.time("since", "detected at or after this time (default 30 days ago)"),
            params.LIMIT,
            params.CURSOR,
        ),
        errors=(404,),
    ),
)
