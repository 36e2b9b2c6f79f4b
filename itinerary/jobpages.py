"""Pages of jobs as JSON: one narrow query, and each job version's JSON cached.

`GET /jobs?tags=…&limit=100` is the API's hottest listing (a UI polls it). Reading
the page's full rows with their tags and actions, and building the query, cost
2.4 ms of CPU a request on PostgreSQL (2 cores, measured): one process could not
answer 500 a second. A job's JSON changes only when the job is saved or archived
(itinerary/jobstore.py), and each of those writes sets its `updated_at` (to the
microsecond, in the same transaction as its tags and actions), so `(id, updated_at)`
names one stored version for every process sharing the database. A page is
answered from one query returning only the matching jobs' `(id, name, updated_at)`
(its SQL text built once per filter) and the cached JSON of those versions; only
versions not seen yet are read in full (the cache: `itinerary/jobcache.py`).
"""

from __future__ import annotations

from typing import Any

from itinerary import jobcache, pagination, queries
from itinerary.models import Job

# SQL text of the narrow query, per dialect and filter (a UI repeats the same few).
MAX_FILTERS = 256
# Where updated_at is in `queries.JOB_COLUMNS` (every column of `job`, in model order); found
# by identity, as a peewee field's == builds an expression.
UPDATED_AT = next(i for i, c in enumerate(Job._meta.sorted_fields) if c is Job.updated_at)

_sql: dict[tuple[Any, ...], tuple[str, list[Any]]] = {}


def clear() -> None:
    jobcache.clear()
    _sql.clear()


def _narrow(f: Any) -> list[tuple[Any, ...]]:
    """(id, name, updated_at) of the page's jobs, plus one to tell whether more follow."""
    database = Job._meta.database.obj
    key = (type(database), f)
    found = _sql.get(key)
    if found is None:
        query = queries.jobs_query(f).select(Job.id, Job.name, Job.updated_at)
        sql, params = database.get_sql_context().sql(query).query()
        if len(_sql) >= MAX_FILTERS:
            _sql.clear()
        found = _sql[key] = (sql, list(params))
    return database.execute_sql(*found).fetchall()


def _full(job_ids: list[int]) -> dict[int, tuple[Any, str]]:
    """The current version of each job, read in full: id -> (updated_at, JSON)."""
    rows = []
    for i in range(0, len(job_ids), 512):
        query = Job.select(*queries.JOB_COLUMNS).where(Job.id.in_(job_ids[i : i + 512]))
        database = Job._meta.database.obj
        rows.extend(database.execute(query).fetchall())
    return {
        row[0]: (row[UPDATED_AT], version.json)
        for row, version in zip(rows, queries.versions_of(rows), strict=True)
    }


def page(f: Any) -> tuple[list[str], str | None]:
    """The JSON of a page of jobs matching `f` (a `queries.JobFilter`) and the next cursor."""
    rows = _narrow(f)
    more = f.limit is not None and len(rows) > f.limit
    if f.limit is not None:
        rows = rows[: f.limit]
    missing = [job_id for job_id, _, at in rows if (jobcache.get(job_id) or (None,))[0] != at]
    fresh = _full(missing) if missing else {}
    out = []
    for job_id, _, _ in rows:
        entry = fresh.get(job_id) or jobcache.get(job_id)
        if entry is None:  # archived or gone between the two queries: leave it out
            continue
        if job_id in fresh:
            jobcache.put(job_id, entry)
        out.append(entry[1])
    cursor = pagination.encode(queries.JOBS_KIND, [rows[-1][1], rows[-1][0]]) if more else None
    return out, cursor
