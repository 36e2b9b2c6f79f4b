"""The reads the pages make beyond the API's (itinerary/queries.py), each index-backed.

Active runs come from the (status, scheduled_at) index, recently finished ones
from completed_at, a job's usual duration from (job_id, status, scheduled_at).
What is costly and changes slowly is cached in the process for a short while:
the upcoming runs of every job (30 s) and each job's median duration (60 s).
Call these through `Database.read`.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from itinerary import jobstore, queries, states
from itinerary.jobs import JobSpec
from itinerary.models import Job, JobRun

ACTIVE_CAP = 500
RECENT_WINDOW = timedelta(minutes=15)
UPCOMING_WINDOW = timedelta(hours=1)
UPCOMING_CAP = 50
HISTORY_MIN = 5  # successes needed before a progress estimate is shown
UPCOMING_TTL_S = 30.0
MEDIAN_TTL_S = 60.0

TODAY_TTL_S = 60.0
_upcoming_cache: dict[str, Any] = {}
_today_cache: dict[datetime, tuple[float, dict[str, int]]] = {}
_median_cache: dict[int, tuple[float, float | None]] = {}


def _rows(query: pw.Query, now: datetime) -> list[dict[str, Any]]:
    return [queries.run_json(r, now) for r in queries._raw(query)]


def active_query(status: str) -> pw.Query:
    """One active state's runs, newest slot first, straight from the (status, scheduled_at)
    index. One query per state: with `status IN (...)` SQLite's statistics (a handful of
    distinct states) make it scan the table, and with `IN` plus ORDER BY PostgreSQL walks
    the scheduled_at index backwards through every finished run (1,000,000 runs: seconds)."""
    return (
        queries._runs_select()
        .where(JobRun.status == status)
        .order_by(JobRun.scheduled_at.desc())
        .limit(ACTIVE_CAP)
    )


def recent_query(now: datetime) -> pw.Query:
    return (
        queries._runs_select()
        .where(JobRun.completed_at >= now - RECENT_WINDOW)
        .order_by(JobRun.completed_at.desc())
        .limit(50)
    )


def ended_query(since: datetime) -> pw.Query:
    return (
        JobRun.select(JobRun.status, pw.fn.COUNT(JobRun.run_id))
        .where(JobRun.completed_at >= since)
        .group_by(JobRun.status)
    )


def successes_query(job_id: int) -> pw.Query:
    return (
        JobRun.select(JobRun.started_at, JobRun.completed_at)
        .where((JobRun.job_id == job_id) & (JobRun.status == states.SUCCEEDED))
        .order_by(JobRun.scheduled_at.desc())
        .limit(20)
    )


def children_query(run_id: str) -> pw.Query:
    # `IS NOT NULL` lets SQLite and PostgreSQL use their partial index (migration 004).
    return (
        queries._runs_select()
        .where((JobRun.parent_run_id == run_id) & JobRun.parent_run_id.is_null(False))
        .limit(20)
    )


def active_runs(now: datetime) -> list[dict[str, Any]]:
    """Runs not yet in a final state, most recently started first."""
    runs = [r for status in states.ACTIVE for r in _rows(active_query(status), now)]
    runs.sort(key=lambda r: r["startedAt"] or r["scheduledAt"], reverse=True)
    return runs


def recent_runs(now: datetime) -> list[dict[str, Any]]:
    """Runs that ended in the last 15 minutes, newest first."""
    return _rows(recent_query(now), now)


def ended_counts(since: datetime) -> dict[str, int]:
    """How many runs ended since `since`, by state."""
    return {status: int(n) for status, n in queries._raw(ended_query(since))}


def ended_today(now: datetime) -> dict[str, int]:
    """`ended_counts` since midnight UTC, kept 60 s: a busy day is many rows to count."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hit = _today_cache.get(midnight)
    if hit is not None and now.timestamp() - hit[0] < TODAY_TTL_S:
        return hit[1]
    counts = ended_counts(midnight)
    _today_cache.clear()
    _today_cache[midnight] = (now.timestamp(), counts)
    return counts


def version(runs: Iterable[dict[str, Any]]) -> str:
    """What a polled fragment shows, as a short hash: equal hash, nothing to send (204)."""
    text = "|".join(f"{r['runId']}:{r['state']}:{r['updatedAt']}" for r in runs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def median_duration(job_id: int, clock_s: float) -> float | None:
    """The job's median duration over its last 20 successes (None with fewer than 5)."""
    cached = _median_cache.get(job_id)
    if cached and clock_s - cached[0] < MEDIAN_TTL_S:
        return cached[1]
    query = successes_query(job_id)
    spans = [
        (queries._utc(end) - queries._utc(start)).total_seconds()  # type: ignore[operator]
        for start, end in queries._raw(query)
        if start is not None and end is not None
    ]
    value = statistics.median(spans) if len(spans) >= HISTORY_MIN else None
    _median_cache[job_id] = (clock_s, value)
    return value


def jobs_by_id(job_ids: Iterable[int]) -> dict[int, JobSpec]:
    ids = sorted(set(job_ids))
    return {j.stored_id: j for j in jobstore.load_jobs(ids, include_archived=True)} if ids else {}


def _jobs_stamp() -> tuple[Any, ...]:
    return tuple(Job.select(pw.fn.COUNT(Job.id), pw.fn.MAX(Job.updated_at)).tuples().first() or ())


def upcoming(now: datetime, clock_s: float) -> list[tuple[datetime, JobSpec]]:
    """The next hour's scheduled runs of every enabled job (at most 50), cached 30 s or
    until a job is created, changed or archived (any process: the stamp is read each time)."""
    stamp = _jobs_stamp()
    if (
        _upcoming_cache
        and clock_s - _upcoming_cache["at"] < UPCOMING_TTL_S
        and _upcoming_cache["stamp"] == stamp
    ):
        found: list[tuple[datetime, JobSpec]] = _upcoming_cache["runs"]
        return [(t, j) for t, j in found if t > now]
    out: list[tuple[datetime, JobSpec]] = []
    # list_jobs keeps each stored version's spec, so only changed jobs are decoded again.
    versions, _ = queries.list_jobs(queries.JobFilter(enabled=True, limit=None))
    for job in (v.spec for v in versions):
        if not job.enabled or job.cron is None:
            continue
        for t in job.cron.iter_after(now):
            if t > now + UPCOMING_WINDOW or len(out) > 4 * UPCOMING_CAP:
                break
            out.append((t, job))
    out.sort(key=lambda pair: (pair[0], pair[1].name))
    out = out[:UPCOMING_CAP]
    _upcoming_cache.update(at=clock_s, runs=out, stamp=stamp)
    return out


def last_run_query(job_id: int) -> pw.Query:
    return (
        queries._runs_select()
        .where(JobRun.job_id == job_id)
        .order_by(JobRun.scheduled_at.desc())
        .limit(1)
    )


_LAST_RUN_SQL: dict[type, str] = {}
UNION_CHUNK = 100
LAST_RUN_TTL_S = 5.0
_last_run_cache: dict[int, tuple[float, dict[str, Any] | None]] = {}


def last_runs(
    job_ids: list[int], now: datetime, max_age_s: float = LAST_RUN_TTL_S
) -> dict[int, dict[str, Any]]:
    """Each job's latest run (by slot), kept 5 s per job: a job page and its polled header
    read the database once. The job list, which keeps whole pages a few seconds itself,
    asks with `max_age_s=0` so that its pages are never older than its own cache."""
    clock_s = now.timestamp()
    out: dict[int, dict[str, Any]] = {}
    missing = []
    for job_id in job_ids:
        hit = _last_run_cache.get(job_id)
        if hit is not None and clock_s - hit[0] < max_age_s:
            if hit[1] is not None:
                out[job_id] = hit[1]
        else:
            missing.append(job_id)
    found = _read_last_runs(missing, now) if missing else {}
    if len(_last_run_cache) > 20000:
        _last_run_cache.clear()
    _today_cache.clear()
    for job_id in missing:
        _last_run_cache[job_id] = (clock_s, found.get(job_id))
    out.update(found)
    return out


def _read_last_runs(job_ids: list[int], now: datetime) -> dict[int, dict[str, Any]]:
    """Each job's latest run (by slot): one index range read per job, all in one statement.

    `(SELECT ... WHERE job_id = ? ORDER BY scheduled_at DESC LIMIT 1) UNION ALL ...`, each
    part wrapped so that SQLite accepts its ORDER BY; PostgreSQL has no loose index scan
    for a GROUP BY, and MariaDB no LATERAL. The SQL of one part is built once per dialect.
    """
    database = JobRun._meta.database.obj
    sql = _LAST_RUN_SQL.get(type(database))
    if sql is None:
        sql, params = database.get_sql_context().sql(last_run_query(0)).query()
        assert list(params) == [0, 1], params  # the job id, then the limit
        _LAST_RUN_SQL[type(database)] = sql
    out: dict[int, dict[str, Any]] = {}
    for i in range(0, len(job_ids), UNION_CHUNK):
        chunk = job_ids[i : i + UNION_CHUNK]
        union = " UNION ALL ".join(f"SELECT * FROM ({sql}) t{n}" for n in range(len(chunk)))
        params = [v for job_id in chunk for v in (job_id, 1)]
        for row in database.execute_sql(union, params).fetchall():
            out[row[queries.JOB_ID]] = queries.run_json(row, now)
    return out


def job_runs(job_id: int, now: datetime, limit: int = 10) -> list[dict[str, Any]]:
    query = (
        queries._runs_select()
        .where(JobRun.job_id == job_id)
        .order_by(JobRun.scheduled_at.desc())
        .limit(limit)
    )
    return _rows(query, now)


def child_runs(run_id: str, now: datetime) -> list[dict[str, Any]]:
    return _rows(children_query(run_id), now)


def clear_caches() -> None:
    """Forget every cached read (tests: a new database behind the same process)."""
    _upcoming_cache.clear()
    _median_cache.clear()
    _last_run_cache.clear()
    _today_cache.clear()
