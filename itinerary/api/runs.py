"""Run routes: list and read runs, start one by hand, cancel, violations, actions, logs.

Reads go through `Database.read`. Manual runs and cancellations go through
`itinerary.operations` (shared with the web pages) to the scheduler, which owns
every active run; logs come from the executor by the run's stored handle.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from itinerary import history, operations, queries, states
from itinerary.api import params
from itinerary.api.jobs import JOB_ID, MAX_ID, job_id_of, load_job
from itinerary.api.routing import Call, PathParam, Reply, Route
from itinerary.errors import ApiError, invalid, not_found
from itinerary.executors.base import ExecutorError
from itinerary.ids import is_run_id
from itinerary.jobs import MODIFIABLE_FIELDS
from itinerary.jsontext import iso

RUN_ID = PathParam("run_id", {"type": "string", "pattern": "^r[a-z0-9]{15}$"}, "run id")
RUN_OR_JOB = PathParam(
    "id",
    {"type": "string", "pattern": "^(r[a-z0-9]{15}|[1-9][0-9]{0,17})$"},
    "a run id (r + 15 characters) for one run, or a numeric job id for that job's runs",
)
START_FUTURE_MAX = timedelta(days=366)
START_PAST_SLACK = timedelta(minutes=1)
OVERRIDES = MODIFIABLE_FIELDS  # what a manual run may override


def _run_id(call: Call, name: str = "run_id") -> str:
    run_id = call.path[name]
    if not is_run_id(run_id):
        raise not_found(f"run {run_id!r}")
    return run_id


def _job_ids(values: list[str] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    if not all(re.fullmatch(r"[0-9]{1,19}", v) and int(v) <= MAX_ID for v in values):
        raise invalid({"job_id": "must be numeric job ids"})
    return tuple(int(v) for v in values)


def _check_durations(q: dict[str, Any]) -> None:
    low, high = q["min_duration"], q["max_duration"]
    if low is not None and high is not None and low > high:
        raise invalid({"max_duration": "must not be shorter than min_duration"})


def list_runs(call: Call) -> Any:
    q = call.query
    _check_durations(q)
    f = queries.RunFilter(
        job_ids=_job_ids(q["job_id"]),
        name=q["name"],
        tags=tuple(q["tags"] or ()),
        status=tuple(q["status"] or ()),
        triggers=tuple(q["trigger"] or ()),
        started_after=q["started_after_time"],
        ended_before=q["ended_before_time"],
        running_after=q["running_after_time"],
        running_before=q["running_before_time"],
        min_duration=q["min_duration"],
        max_duration=q["max_duration"],
        limit=q["limit"],
        cursor=q["cursor"],
    )
    return call.ctx.database.read(queries.list_runs, f, call.now)


def _job_runs(call: Call, job_id: int) -> Any:
    q = call.query
    _check_durations(q)
    f = queries.RunFilter(
        job_ids=(job_id,),
        status=tuple(q["status"] or ()),
        scheduled_from=q["start_time"],
        scheduled_to=q["end_time"],
        min_duration=q["min_duration"],
        max_duration=q["max_duration"],
        limit=q["limit"],
        cursor=q["cursor"],
    )
    found = call.ctx.database.read(queries.job_runs, job_id, f, call.now)
    if found is None:
        raise not_found(f"job {job_id}")
    return found


def get_run_or_job_runs(call: Call) -> Any:
    ident = call.path["id"]
    if is_run_id(ident):
        run = call.ctx.database.read(queries.get_run, ident, call.now)
        if run is None:
            raise not_found(f"run {ident}")
        found = call.ctx.database.read(history.anomalies_of_run, ident)
        run["anomaly"] = found[-1] if found else None
        return run
    return _job_runs(call, job_id_of(ident))


def job_runs(call: Call) -> Any:
    return _job_runs(call, job_id_of(call.path["job_id"]))


def _start_at(call: Call, body: dict[str, Any]) -> Any:
    if "startTime" in body and "start-time" in body:
        raise invalid({"startTime": "give startTime or start-time, not both"})
    key = "start-time" if "start-time" in body else "startTime"
    raw = body.get(key)
    if raw is None:
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        start = params.parse_time(raw, call.now)
    except ValueError as exc:
        raise invalid({key: str(exc)}) from None
    if not call.now - START_PAST_SLACK <= start <= call.now + START_FUTURE_MAX:
        raise invalid({key: "must be from now to a year ahead"})
    return start


def start_run(call: Call) -> Any:
    ident = call.path["id"]
    body = call.body
    if not isinstance(body, dict):
        raise invalid({"body": "must be a JSON object"})
    unknown = sorted(set(body) - {*OVERRIDES, "startTime", "start-time"})
    if unknown:
        raise invalid({k: "unknown field" for k in unknown})
    job = load_job(call, ident, live=True)
    if not job.manually_runnable:
        raise ApiError(403, f"job {job.name!r} is not manually runnable", code="not_runnable")
    given = operations.check_overrides(
        {k: body[k] for k in OVERRIDES if body.get(k) is not None}, job
    )
    start_at = _start_at(call, body)
    run_id = operations.run_now(call.ctx, job, given, start_at, call.now)
    started = iso(start_at or call.now)
    return Reply(
        202,
        {"runId": run_id, "jobId": job.id, "startAt": started},
        headers={"Location": f"runs/{run_id}"},
    )


def cancel_run(call: Call) -> Any:
    run_id = _run_id(call, "id")
    reason = call.query["reason"] or "cancelled through the API"
    operations.cancel_run(call.ctx, run_id, reason, call.now)
    return Reply(202, {"runId": run_id, "cancelled": True})


def _items_for(call: Call, fetch: Any) -> Any:
    run_id = _run_id(call)
    if call.ctx.database.read(queries.get_run_row, run_id) is None:
        raise not_found(f"run {run_id}")
    return {"items": call.ctx.database.read(fetch, run_id)}


def violations(call: Call) -> Any:
    return _items_for(call, queries.violations)


def actions(call: Call) -> Any:
    return _items_for(call, queries.actions)


def logs(call: Call) -> Any:
    run_id = _run_id(call)
    found = call.ctx.database.read(queries.attempt_handle, run_id, call.query["attempt"] or None)
    if found is None:
        raise not_found(f"run {run_id}")
    attempt, handle = found
    if handle is None:
        raise ApiError(409, f"run {run_id} attempt {attempt} has not started", code="not_started")
    if call.ctx.executor is None:
        raise ApiError(503, "no executor is configured to read logs from")
    try:
        text = call.ctx.executor.logs(handle, call.query["tail"])
    except ExecutorError as exc:
        raise ApiError(503, f"the executor could not read the logs: {exc}") from None
    return {"runId": run_id, "attempt": attempt, "text": text}


TIME_WINDOW = (
    params.time("start_time", "runs whose slot is at or after this time"),
    params.time("end_time", "runs whose slot is before this time"),
)
STATUS = params.csv("status", "runs in these states", states.ALL)
DURATION = (
    params.duration("min_duration", "runs that ran at least this long (running ones: so far)"),
    params.duration("max_duration", "runs that ran at most this long (running ones: so far)"),
)
RUN_FILTERS = (
    params.csv("job_id", "runs of these numeric job ids"),
    params.string("name", "runs of jobs whose name matches this glob (`*`, `?`) or substring"),
    params.csv("tags", "runs of jobs carrying all of these tags"),
    STATUS,
    params.csv("trigger", "runs started by these triggers", states.TRIGGERS),
    params.time("started_after_time", "runs started at or after this time"),
    params.time("ended_before_time", "runs ended at or before this time"),
    params.time("running_after_time", "runs still running at or after this time (overlap)"),
    params.time("running_before_time", "runs already running at or before this time (overlap)"),
    *DURATION,
    params.LIMIT,
    params.CURSOR,
)
JOB_RUN_PARAMS = (*TIME_WINDOW, STATUS, *DURATION, params.LIMIT, params.CURSOR)

ROUTES = (
    Route(
        "GET",
        "/runs",
        list_runs,
        "viewer",
        "List runs, newest slot first",
        "runs",
        response="RunPage",
        params=RUN_FILTERS,
    ),
    Route(
        "GET",
        "/runs/{id}",
        get_run_or_job_runs,
        "viewer",
        "A run by run id, or a job's runs by numeric job id (filters apply to the latter)",
        "runs",
        response="RunOrPage",
        path_params=(RUN_OR_JOB,),
        params=JOB_RUN_PARAMS,
        errors=(404,),
    ),
    Route(
        "POST",
        "/runs/{id}",
        start_run,
        "operator",
        "Start a run of the job with this numeric id now (or at startTime)",
        "runs",
        ok=202,
        response="RunAccepted",
        path_params=(RUN_OR_JOB,),
        body="RunInput",
        body_required=False,
        errors=(403, 404, 409),
    ),
    Route(
        "DELETE",
        "/runs/{id}",
        cancel_run,
        "operator",
        "Cancel the run with this run id (kills its workload)",
        "runs",
        ok=202,
        response="RunCancelled",
        path_params=(RUN_OR_JOB,),
        errors=(404, 409),
        params=(params.string("reason", "why, recorded on the run", max_length=500),),
    ),
    Route(
        "GET",
        "/runs/{run_id}/violations",
        violations,
        "viewer",
        "Constraint violations of a run",
        "runs",
        response="ViolationList",
        path_params=(RUN_ID,),
        errors=(404,),
    ),
    Route(
        "GET",
        "/runs/{run_id}/actions",
        actions,
        "viewer",
        "Actions taken for a run",
        "runs",
        response="ActionList",
        path_params=(RUN_ID,),
        errors=(404,),
    ),
    Route(
        "GET",
        "/runs/{run_id}/logs",
        logs,
        "viewer",
        "A run attempt's output",
        "runs",
        response="Logs",
        path_params=(RUN_ID,),
        errors=(404, 409),
        params=(
            params.integer("tail", "only the last N lines", default=1000, lo=1, hi=100000),
            params.integer("attempt", "attempt number (0: the latest)", default=0, lo=0, hi=1000),
        ),
    ),
    Route(
        "GET",
        "/jobs/{job_id}/runs",
        job_runs,
        "viewer",
        "A job's runs, newest slot first",
        "jobs",
        response="RunPage",
        path_params=(JOB_ID,),
        params=JOB_RUN_PARAMS,
        errors=(404,),
    ),
)
