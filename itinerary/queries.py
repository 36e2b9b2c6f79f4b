"""Read queries shared by the JSON API and the HTML pages.

Each function runs on the read-only connection (call it through
`Database.read`), returns JSON-ready values (the hot listings: the JSON text
itself, `RawJSON`), and is written so that the
database can answer it from an index even with millions of `job_run` rows (the
plans are checked in tests/test_query_plans.py).

Hot listings avoid peewee's per-row model instances: a page's rows are fetched
as the driver's raw tuples and turned into JSON values directly (on PostgreSQL,
fetching a 100-run page as models costs 2.5 ms, as tuples 0.5 ms). The JSON of
a finished run and of a job is cached per stored version (the raw rows
themselves are the key), so a page of them only re-reads rows and joins text.

Why one long module: the runs' and the jobs' reads share the raw-row helpers and the
JSON caches keyed by rows; it would split into runs, jobs and stats reads if it grows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, cast

import peewee as pw

from itinerary import jobstore, pagination
from itinerary.errors import invalid
from itinerary.jobs import JobSpec
from itinerary.jobstore import ACTION_NAMES, CONSTRAINT_NAMES
from itinerary.jsontext import RawJSON, iso
from itinerary.models import (
    ActionRun,
    ConstraintViolation,
    Job,
    JobAction,
    JobRun,
    JobTag,
    RunAttempt,
    SchedulerStats,
    SyncerStats,
    WebhookHandlerStats,
    tuples,
)

RUNS_KIND = "runs"
JOBS_KIND = "jobs"


def like(pattern: str) -> str:
    """A shell-style glob (`*`, `?`) as a LIKE pattern escaped with `!`; no glob = substring."""
    escaped = pattern.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    if "*" not in pattern and "?" not in pattern:
        return f"%{escaped}%"
    return escaped.replace("*", "%").replace("?", "_")


def _matches(column: Any, pattern: str) -> pw.Node:
    return pw.NodeList((pw.fn.LOWER(column), pw.SQL("LIKE"), like(pattern), pw.SQL("ESCAPE '!'")))


# --- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    job_ids: tuple[int, ...] | None = None  # None = any job
    name: str | None = None
    tags: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    scheduled_from: datetime | None = None
    scheduled_to: datetime | None = None
    started_after: datetime | None = None
    ended_before: datetime | None = None
    running_after: datetime | None = None
    running_before: datetime | None = None
    min_duration: float | None = None  # seconds; running runs count their time so far
    max_duration: float | None = None
    limit: int = pagination.DEFAULT_LIMIT
    cursor: str | None = None


def _raw(query: Any) -> list[tuple[Any, ...]]:
    """The rows of `query` as the driver returns them (no per-row model or converters)."""
    return query.model._meta.database.execute(query).fetchall()


# SQL text of fixed-shape queries, per reader class (dialect), builder and argument shape.
_SQL_TEXT: dict[tuple[Any, ...], str] = {}


def _prepared(build: Callable[..., pw.Query], *args: Any) -> list[tuple[Any, ...]]:
    """The raw rows of `build(*args)`, its SQL text built once per dialect and shape.

    peewee takes 0.3 ms to build a one-run SELECT and 0.5 ms for a 100-id IN list, more
    than the database takes to answer; these queries differ only in their parameters.
    `build` must use each argument once, in order, as a plain parameter (an int, a string,
    or a list of them, padded to a power of two so that few shapes exist): the first build
    of each shape checks that its parameters are exactly the arguments.
    """
    database = JobRun._meta.database.obj
    args = tuple(_padded(a) if isinstance(a, list) else a for a in args)
    params = [v for a in args for v in (a if isinstance(a, list) else (a,))]
    key = (type(database), build, tuple(len(a) if isinstance(a, list) else -1 for a in args))
    sql = _SQL_TEXT.get(key)
    if sql is None:
        sql, built = database.get_sql_context().sql(build(*args)).query()
        if list(built) != params:
            raise ValueError(f"{build.__name__} does not use its arguments once, in order")
        _SQL_TEXT[key] = sql
    return database.execute_sql(sql, params).fetchall()


def _padded(values: list[Any]) -> list[Any]:
    """`values` with its last item repeated up to a power of two (same IN (...) result)."""
    size = 1 << max(0, len(values) - 1).bit_length()
    return values + values[-1:] * (size - len(values))


def _utc(value: Any) -> datetime | None:
    """A raw timestamp column as an aware UTC datetime (drivers give naive UTC, SQLite text)."""
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return JobRun.scheduled_at.python_value(value)


def _stamp(value: Any) -> str | None:
    """A raw timestamp column as RFC 3339 UTC, the same text as `iso` of the model value."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"
    return iso(_utc(value))


def _json(value: Any) -> Any:
    return None if value is None else json.loads(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _job_ids_for(f: RunFilter) -> list[int] | None:
    """Narrow the job filter by name and tags on the small `job` tables first."""
    ids: set[int] | None = set(f.job_ids) if f.job_ids is not None else None
    if f.name:
        found = {i for (i,) in tuples(Job.select(Job.id).where(_matches(Job.name, f.name)))}
        ids = found if ids is None else ids & found
    if f.tags:
        found = {i for (i,) in tuples(_tagged_all(f.tags))}
        ids = found if ids is None else ids & found
    return None if ids is None else sorted(ids)


def _tagged_all(tags: tuple[str, ...]) -> pw.Query:
    """Job ids carrying every one of `tags`."""
    return (
        JobTag.select(JobTag.job_id)
        .where(JobTag.tag.in_(list(tags)))
        .group_by(JobTag.job_id)
        .having(pw.fn.COUNT(JobTag.tag) == len(tags))
    )


# What a run's JSON shows, in `run_json`'s order, then its job's name. Every run has its
# job (a foreign key); the LEFT JOIN keeps job_run the driving table, read in index order.
RUN_COLUMNS = (
    JobRun.run_id,
    JobRun.job_id,
    JobRun.scheduled_at,
    JobRun.trigger,
    JobRun.attempt,
    JobRun.status,
    JobRun.reason,
    JobRun.success,
    JobRun.behind_schedule,
    JobRun.args,
    JobRun.started_at,
    JobRun.completed_at,
    JobRun.exit_code,
    JobRun.error,
    JobRun.executor,
    JobRun.handle,
    JobRun.parent_run_id,
    JobRun.created_at,
    JobRun.updated_at,
    Job.name,
)


JOB_ID, SCHEDULED, STARTED, COMPLETED = (
    next(i for i, c in enumerate(RUN_COLUMNS) if c is field)
    for field in (JobRun.job_id, JobRun.scheduled_at, JobRun.started_at, JobRun.completed_at)
)
# Pages of settled runs are read again and again (a UI polls them): their JSON text is kept,
# ~1.3 KB a run with its key, ~10 MB when full.
RUN_CACHE_SIZE = 8192


def _runs_select() -> pw.Query:
    """`RUN_COLUMNS` of job_run joined to its job: add WHERE, ORDER BY and LIMIT, read `_raw`."""
    return JobRun.select(_run_columns()).join(Job, pw.JOIN.LEFT_OUTER, on=(Job.id == JobRun.job_id))


# RUN_COLUMNS as SQL text, per reader class (dialect).
_COLUMNS_TEXT: dict[type, pw.SQL] = {}


def _run_columns() -> pw.SQL:
    """`RUN_COLUMNS` as the bound dialect's SQL text, rendered once.

    peewee took 0.3 ms to render these twenty columns for every page of runs, more than
    PostgreSQL took to answer it (bench/api.py, a job's failed runs at 500 req/s). They
    take no parameters, and the aliases are the same as they would be: the FROM clause
    names job_run first ("t1") and the joined job second ("t2").
    """
    database = JobRun._meta.database.obj
    node = _COLUMNS_TEXT.get(type(database))
    if node is None:
        full = JobRun.select(*RUN_COLUMNS).join(
            Job, pw.JOIN.LEFT_OUTER, on=(Job.id == JobRun.job_id)
        )
        sql, params = database.get_sql_context().sql(full).query()
        assert not params and sql.startswith("SELECT "), sql
        node = _COLUMNS_TEXT[type(database)] = pw.SQL(sql[len("SELECT ") : sql.index(" FROM ")])
    return node


def runs_query(f: RunFilter, job_ids: list[int] | None, now: datetime | None = None) -> pw.Query:
    """The SELECT for one page of runs, newest slot first (keyset on the primary key)."""
    query = _runs_select()
    if job_ids is not None:
        query = query.where(JobRun.job_id.in_(job_ids))
    if f.status:
        query = query.where(JobRun.status.in_(list(f.status)))
    if f.triggers:
        query = query.where(JobRun.trigger.in_(list(f.triggers)))
    if f.scheduled_from is not None:
        query = query.where(JobRun.scheduled_at >= f.scheduled_from)
    if f.scheduled_to is not None:
        query = query.where(JobRun.scheduled_at < f.scheduled_to)
    if f.started_after is not None:
        query = query.where(JobRun.started_at >= f.started_after)
    if f.ended_before is not None:
        query = query.where(JobRun.completed_at <= f.ended_before)
    # Overlapping a window = started before its end and not finished before its start.
    if f.running_before is not None:
        query = query.where(JobRun.started_at <= f.running_before)
    if f.running_after is not None:
        query = query.where(
            JobRun.started_at.is_null(False)
            & ((JobRun.completed_at >= f.running_after) | JobRun.completed_at.is_null())
        )
    if f.min_duration is not None or f.max_duration is not None:
        query = query.where(duration_clause(f.min_duration, f.max_duration, now))
    key = pagination.decode(RUNS_KIND, f.cursor, (str, int))
    if key is not None:
        try:
            at = datetime.fromisoformat(key[0])
        except ValueError:
            raise invalid({"cursor": "is not a cursor for this listing"}) from None
        # `(at, job) < key` spelt so that `scheduled_at <= at` bounds the index range: with
        # only the OR form, the databases read every newer row and filter it out (PostgreSQL,
        # 1,000,000 runs, a page from the middle: 140 ms instead of 0.3 ms).
        query = query.where(
            (JobRun.scheduled_at <= at) & ((JobRun.scheduled_at < at) | (JobRun.job_id < key[1]))
        )
    return query.order_by(JobRun.scheduled_at.desc(), JobRun.job_id.desc()).limit(f.limit + 1)


# Durations are compared at millisecond resolution: SQLite's julianday() arithmetic is
# floating point, so a run of exactly 30 s may come out as 29.9999999 s.
DURATION_SLACK = 0.001


def duration_seconds(now: datetime | None) -> pw.ColumnBase:
    """A run's duration in seconds as SQL of the connected dialect (running runs: to `now`).

    The three databases share no interval arithmetic, so this is the one place that
    spells it per dialect; the filter narrows the index-ordered scan of `runs_query`
    (slot order, keyset paging), it does not drive it.
    """
    end: Any = JobRun.completed_at
    if now is not None:
        end = pw.fn.COALESCE(JobRun.completed_at, now.astimezone(UTC).replace(tzinfo=None))
    database = JobRun._meta.database.obj
    if isinstance(database, pw.PostgresqlDatabase):
        return pw.fn.EXTRACT(pw.NodeList((pw.SQL("EPOCH FROM"), end - JobRun.started_at)))
    if isinstance(database, pw.MySQLDatabase):
        return pw.fn.TIMESTAMPDIFF(pw.SQL("MICROSECOND"), JobRun.started_at, end) / 1000000.0
    return (pw.fn.julianday(end) - pw.fn.julianday(JobRun.started_at)) * 86400.0


def duration_clause(low: float | None, high: float | None, now: datetime | None) -> pw.Node:
    """Runs that started and ran at least `low` and at most `high` seconds."""
    clause = JobRun.started_at.is_null(False)
    seconds = duration_seconds(now)
    if low is not None:
        clause &= seconds >= low - DURATION_SLACK
    if high is not None:
        clause &= seconds <= high + DURATION_SLACK
    return clause


def list_runs(f: RunFilter, now: datetime) -> RawJSON:
    """A page of runs as the API's JSON text (`{"items": [...], "nextCursor": ...}`)."""
    job_ids = _job_ids_for(f)
    if job_ids == []:
        return pagination.raw_page([], None)
    rows = _raw(runs_query(f, job_ids, now))
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    cursor = None
    if more:
        last = rows[-1]
        cursor = pagination.encode(RUNS_KIND, [_stamp(last[SCHEDULED]), last[JOB_ID]])
    return pagination.raw_page([run_text(r, now) for r in rows], cursor)


def run_text(row: tuple[Any, ...], now: datetime) -> str:
    """`run_json` as JSON text; cached for runs whose JSON no longer depends on `now`."""
    if row[STARTED] is not None and row[COMPLETED] is None:  # running: its duration grows
        return json.dumps(run_json(row, now), separators=(",", ":"))
    return _settled_run_text(row)


@lru_cache(maxsize=RUN_CACHE_SIZE)
def _settled_run_text(row: tuple[Any, ...]) -> str:
    """The JSON of a run that has ended or not started, keyed by its raw row: a changed row is
    a new key, and a finished run's row no longer changes, so its entry keeps serving."""
    return json.dumps(run_json(row, None), separators=(",", ":"))


def _job_id_row(job_id: int) -> pw.Query:
    return Job.select(Job.id).where(Job.id == job_id)


def job_runs(job_id: int, f: RunFilter, now: datetime) -> RawJSON | None:
    """One job's runs (`f` filters them further), or None when there is no such job."""
    if not _prepared(_job_id_row, job_id):
        return None
    return list_runs(f, now)


def run_json(row: tuple[Any, ...], now: datetime | None) -> dict[str, Any]:
    """A raw `RUN_COLUMNS` row as the API's run object (`now` times a running run)."""
    (
        run_id,
        job_id,
        scheduled_at,
        trigger,
        attempt,
        status,
        reason,
        success,
        behind_schedule,
        args,
        started_at,
        completed_at,
        exit_code,
        error,
        executor,
        handle,
        parent_run_id,
        created_at,
        updated_at,
        job_name,
    ) = row
    duration = None
    ended = _utc(completed_at) or now
    if started_at is not None and ended is not None:
        duration = (ended - _utc(started_at)).total_seconds()  # type: ignore[operator]
    return {
        "runId": run_id,
        "jobId": job_id,
        "jobName": job_name,
        "scheduledAt": _stamp(scheduled_at),
        "trigger": trigger,
        "attempt": attempt,
        "state": status,
        "reason": reason,
        "success": _bool(success),
        "behindSchedule": bool(behind_schedule),
        "args": _json(args),
        "startedAt": _stamp(started_at),
        "endedAt": _stamp(completed_at),
        "durationSeconds": duration,
        "exitCode": exit_code,
        "error": error,
        "executor": executor,
        "handle": _json(handle),
        "parentRunId": parent_run_id,
        "createdAt": _stamp(created_at),
        "updatedAt": _stamp(updated_at),
    }


def get_run_row(run_id: str) -> JobRun | None:
    return JobRun.get_or_none(JobRun.run_id == run_id)


ATTEMPT_COLUMNS = (
    RunAttempt.attempt,
    RunAttempt.status,
    RunAttempt.started_at,
    RunAttempt.completed_at,
    RunAttempt.exit_code,
    RunAttempt.error,
    RunAttempt.executor,
    RunAttempt.handle,
)


def _run_by_id(run_id: str) -> pw.Query:
    """`RUN_COLUMNS` and the run's overrides (only one run's page or GET shows them)."""
    return (
        JobRun.select(*RUN_COLUMNS, JobRun.overrides)
        .join(Job, pw.JOIN.LEFT_OUTER, on=(Job.id == JobRun.job_id))
        .where(JobRun.run_id == run_id)
    )


# Env names that look like they hold a secret: their values are never shown or returned.
SECRET_NAME = re.compile(r"(?i)(secret|token|password|passwd|key|credential)")
MASK = "••••••"


def masked_overrides(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A run's stored resources/env overrides, env values with secret-looking names masked."""
    out = dict(overrides or {})
    if isinstance(out.get("env"), dict):
        out["env"] = {k: MASK if SECRET_NAME.search(k) else v for k, v in out["env"].items()}
    return out


def _attempts_of(run_id: str) -> pw.Query:
    return (
        RunAttempt.select(*ATTEMPT_COLUMNS)
        .where(RunAttempt.run_id == run_id)
        .order_by(RunAttempt.attempt)
    )


def get_run(run_id: str, now: datetime) -> dict[str, Any] | None:
    """One run with its attempts, or None."""
    found = _prepared(_run_by_id, run_id)
    if not found:
        return None
    out = run_json(found[0][:-1], now)
    out["overrides"] = masked_overrides(_json(found[0][-1]))
    out["attempts"] = [
        {
            "attempt": attempt,
            "state": status,
            "startedAt": _stamp(started_at),
            "endedAt": _stamp(completed_at),
            "exitCode": exit_code,
            "error": error,
            "executor": executor,
            "handle": _json(handle),
        }
        for attempt, status, started_at, completed_at, exit_code, error, executor, handle in (
            _prepared(_attempts_of, run_id)
        )
    ]
    return out


def attempt_handle(run_id: str, attempt: int | None) -> tuple[int, dict[str, Any] | None] | None:
    """(attempt, executor handle) of a run's latest or given attempt; None if no such run."""
    row = get_run_row(run_id)
    if row is None:
        return None
    if attempt is None or attempt == row.attempt:
        return row.attempt, row.handle
    found = RunAttempt.get_or_none((RunAttempt.run_id == run_id) & (RunAttempt.attempt == attempt))
    return attempt, (found.handle if found else None)


def violations(run_id: str) -> list[dict[str, Any]]:
    rows = (
        ConstraintViolation.select()
        .where(ConstraintViolation.run_id == run_id)
        .order_by(ConstraintViolation.violation_time, ConstraintViolation.id)
    )
    return [
        {
            "id": str(v.id),
            "runId": v.run_id,
            "constraint": CONSTRAINT_NAMES.get(v.constraint_type_id, str(v.constraint_type_id)),
            "at": iso(v.violation_time),
            "details": v.details,
        }
        for v in rows
    ]


def actions(run_id: str) -> list[dict[str, Any]]:
    rows = (
        ActionRun.select()
        .where(ActionRun.run_id == run_id)
        .order_by(ActionRun.executed_at, ActionRun.id)
    )
    return [
        {
            "id": str(a.id),
            "runId": a.run_id,
            "action": ACTION_NAMES.get(a.action_type_id, str(a.action_type_id)),
            "trigger": a.trigger,
            "violationId": None
            if a.constraint_violation_id is None
            else str(a.constraint_violation_id),
            "executedAt": iso(a.executed_at),
            "success": bool(a.success),
            "error": a.error,
            "details": a.details,
        }
        for a in rows
    ]


# --- jobs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    name_pattern: str | None = None
    tags: tuple[str, ...] = ()
    tag_pattern: str | None = None
    schedule: str | None = None
    enabled: bool | None = None
    include_archived: bool = False
    archived_only: bool = False  # the job list's "archived" status
    limit: int | None = pagination.DEFAULT_LIMIT  # None = all (exports)
    cursor: str | None = None


# A job's whole stored definition: every `job` column, its tags, its actions.
JOB_COLUMNS = tuple(Job._meta.sorted_fields)
ACTION_COLUMNS: tuple[pw.Field, ...] = (
    JobAction.job_id,
    JobAction.position,
    JobAction.action_type_id,
    JobAction.trigger,
    JobAction.constraint_type_id,
    JobAction.config,
)
# Job versions kept decoded and encoded: ~2.5 KB for a small job, more with a podSpec.
JOB_CACHE_SIZE = 2048
IN_CHUNK = 512  # ids per IN (...) list (a power of two), under every dialect's limit


class JobVersion(NamedTuple):
    """One stored version of a job: its definition and that definition's JSON text."""

    spec: JobSpec
    json: str


def jobs_query(f: JobFilter) -> pw.ModelSelect[Job]:
    """Matching jobs' rows (`JOB_COLUMNS`) in name order (keyset on name, id)."""
    query = Job.select(*JOB_COLUMNS)
    if f.archived_only:
        query = query.where(Job.archived_at.is_null(False))
    elif not f.include_archived:
        query = query.where(Job.archived_at.is_null())
    if f.name_pattern:
        query = query.where(_matches(Job.name, f.name_pattern))
    if f.tags:
        query = query.where(Job.id.in_(_tagged_all(f.tags)))
    if f.tag_pattern:
        query = query.where(
            Job.id.in_(JobTag.select(JobTag.job_id).where(_matches(JobTag.tag, f.tag_pattern)))
        )
    if f.schedule is not None:
        schedule = " ".join(f.schedule.split())
        query = query.where(Job.schedule.is_null() if not schedule else Job.schedule == schedule)
    if f.enabled is not None:
        query = query.where(Job.enabled == f.enabled)
    key = pagination.decode(JOBS_KIND, f.cursor, (str, int))
    if key is not None:
        query = query.where((Job.name > key[0]) | ((Job.name == key[0]) & (Job.id > key[1])))
    query = query.order_by(Job.name, Job.id)
    return query if f.limit is None else query.limit(f.limit + 1)


@lru_cache(maxsize=JOB_CACHE_SIZE)
def job_version(
    row: tuple[Any, ...], tags: tuple[str, ...], actions: tuple[tuple[Any, ...], ...]
) -> JobVersion:
    """The definition stored as these raw rows; the key is the rows themselves, so any change
    to the job, its tags or its actions (by this process or any other) is a new entry."""
    job = Job(**{f.name: f.python_value(v) for f, v in zip(JOB_COLUMNS, row, strict=True)})
    acts = [
        JobAction(**{f.name: f.python_value(v) for f, v in zip(ACTION_COLUMNS, a, strict=True)})
        for a in actions
    ]
    spec = jobstore.to_spec(job, list(tags), acts)
    return JobVersion(spec, json.dumps(spec.public_dict(), separators=(",", ":")))


def _tags_of(job_ids: list[int]) -> pw.Query:
    return (
        JobTag.select(JobTag.job_id, JobTag.tag)
        .where(JobTag.job_id.in_(job_ids))
        .order_by(JobTag.job_id, JobTag.tag)
    )


def _actions_of(job_ids: list[int]) -> pw.Query:
    return (
        JobAction.select(*ACTION_COLUMNS)
        .where(JobAction.job_id.in_(job_ids))
        .order_by(JobAction.job_id, JobAction.position)
    )


def versions_of(rows: list[tuple[Any, ...]]) -> list[JobVersion]:
    """The versions stored as these job rows (`JOB_COLUMNS`), with their tags and actions."""
    ids = [r[0] for r in rows]
    tags: dict[int, list[str]] = {i: [] for i in ids}
    actions: dict[int, list[tuple[Any, ...]]] = {i: [] for i in ids}
    for chunk in (ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)):
        for job_id, tag in _prepared(_tags_of, chunk):
            tags[job_id].append(tag)
        for action in _prepared(_actions_of, chunk):
            actions[action[0]].append(action)
    return [job_version(r, tuple(tags[r[0]]), tuple(actions[r[0]])) for r in rows]


def list_jobs(f: JobFilter) -> tuple[list[JobVersion], str | None]:
    """A page of jobs: their rows, then their tags and their actions (by 512 ids at a time)."""
    rows = _raw(jobs_query(f))
    more = f.limit is not None and len(rows) > f.limit
    if f.limit is not None:
        rows = rows[: f.limit]
    versions = versions_of(rows)
    cursor = job_cursor(rows[-1][1], rows[-1][0]) if more else None
    return versions, cursor


def job_keys(f: JobFilter) -> list[tuple[int, str]]:
    """(id, name) of what `list_jobs(f)` lists, plus one more if there is one: for a scan
    that reads whole definitions only for the jobs it keeps."""
    query = cast(pw.ModelSelect, jobs_query(f)).select(Job.id, Job.name)
    return [(r[0], r[1]) for r in _raw(query)]


def jobs_by_id(ids: list[int]) -> list[JobVersion]:
    """These jobs' versions, in name order."""
    if not ids:
        return []
    query = Job.select(*JOB_COLUMNS).where(Job.id.in_(ids)).order_by(Job.name, Job.id)
    return versions_of(_raw(query))


def job_cursor(name: str, job_id: int) -> str:
    """The cursor of the job list's page that starts after this job (name order)."""
    return pagination.encode(JOBS_KIND, [name, job_id])


# --- stats -----------------------------------------------------------------------------------


def _number(value: Any) -> float | int:
    if value is None:
        return 0
    number = float(value)
    return int(number) if number.is_integer() else number


def _sums(model: Any, columns: dict[str, Any], since: datetime, until: datetime) -> dict[str, Any]:
    """Aggregate one stats table over the periods that start inside the window."""
    selected = [agg.alias(name) for name, agg in columns.items()]
    row = (
        model.select(pw.fn.COUNT(model.stats_period_id).alias("periods"), *selected)
        .where(
            (model.stats_period_id >= int(since.timestamp()))
            & (model.stats_period_id < int(until.timestamp()))
        )
        .dicts()
        .get()
    )
    return {k: _number(v) for k, v in row.items()}


def stats(since: datetime, until: datetime) -> dict[str, Any]:
    """Run counts by state for slots in the window, and the components' stats summed over it."""
    by_state = tuples(
        JobRun.select(JobRun.status, pw.fn.COUNT(JobRun.run_id).alias("n"))
        .where((JobRun.scheduled_at >= since) & (JobRun.scheduled_at < until))
        .group_by(JobRun.status)
    )
    live = Job.select().where(Job.archived_at.is_null())
    s, y, w = SchedulerStats, SyncerStats, WebhookHandlerStats
    return {
        "from": iso(since),
        "to": iso(until),
        "runsByState": {status: int(n) for status, n in by_state},
        "jobs": {
            "total": live.count(),
            "paused": live.where(Job.enabled == False).count(),  # noqa: E712 - SQL, not Python
        },
        "scheduler": _sums(
            s,
            {
                "iterations": pw.fn.SUM(s.iterations),
                "runJobs": pw.fn.SUM(s.run_jobs),
                "lateJobs": pw.fn.SUM(s.late_jobs),
                "missedJobs": pw.fn.SUM(s.missed_jobs),
                "jobsCancelled": pw.fn.SUM(s.jobs_cancelled),
                "maxInboxLength": pw.fn.MAX(s.max_inbox_length),
                "maxTimeInInboxMs": pw.fn.MAX(s.max_time_in_inbox),
            },
            since,
            until,
        ),
        "syncer": _sums(
            y,
            {
                "totalWrites": pw.fn.SUM(y.total_writes),
                "writesSucceeded": pw.fn.SUM(y.writes_succeeded),
                "writesFailed": pw.fn.SUM(y.writes_failed),
                "maxQueuedWrites": pw.fn.MAX(y.max_queued_writes),
                "maxTimeInWriteQueueMs": pw.fn.MAX(y.max_time_in_write_queue),
            },
            since,
            until,
        ),
        "webhooks": _sums(
            w,
            {
                "sent": pw.fn.SUM(w.webhooks_sent),
                "succeeded": pw.fn.SUM(w.webhooks_succeeded),
                "failed": pw.fn.SUM(w.webhooks_failed),
                "retries": pw.fn.SUM(w.total_retries),
            },
            since,
            until,
        ),
    }
