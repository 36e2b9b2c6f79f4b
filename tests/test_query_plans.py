"""Every list query the API makes on `job_run` is answered from an index, on all three databases.

The table is seeded with enough rows for the planners to care, statistics are
refreshed, and each query's plan is read with EXPLAIN. PostgreSQL is asked to
avoid sequential scans (`enable_seqscan = off`), so a plan that still scans the
table means no index can serve the query at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from itinerary import queries
from itinerary.db import Database
from itinerary.models import Job, JobRun

ROWS = 20_000
JOBS = 50
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(minutes=ROWS)


def _seed(database: Database) -> None:
    def write() -> None:
        w = database.writer
        Job.insert_many(
            [
                {
                    "id": i,
                    "name": f"job-{i}",
                    "active_name": f"job-{i}",
                    "created_at": T0,
                    "updated_at": T0,
                }
                for i in range(1, JOBS + 1)
            ]
        ).execute(w)
        rows = []
        for n in range(ROWS):
            at = T0 + timedelta(minutes=n)
            done = n < ROWS - 20
            rows.append(
                {
                    "job_id": n % JOBS + 1,
                    "scheduled_at": at,
                    "run_id": f"r{n:015d}",
                    "status": ("succeeded", "failed")[n % 7 == 0] if done else "running",
                    "started_at": at,
                    "completed_at": at + timedelta(seconds=50) if done else None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        for i in range(0, ROWS, 1000):
            JobRun.insert_many(rows[i : i + 1000]).execute(w)
        analyze = {
            "sqlite": "ANALYZE",
            "postgres": "ANALYZE job_run",
            "mysql": "ANALYZE TABLE job_run",
        }[database.driver]
        w.execute_sql(analyze).fetchall() if database.driver == "mysql" else w.execute_sql(analyze)

    database.write(write)


def _plan(database: Database, query: Any) -> str:
    sql, params = query.sql()

    def explain() -> str:
        r = database.reader
        if database.driver == "sqlite":
            return "\n".join(row[-1] for row in r.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
        if database.driver == "postgres":
            r.execute_sql("SET enable_seqscan = off")
            return "\n".join(row[0] for row in r.execute_sql("EXPLAIN " + sql, params))
        cursor = r.execute_sql("EXPLAIN " + sql, params)
        names = [d[0] for d in cursor.description]
        return "\n".join(str(dict(zip(names, row, strict=True))) for row in cursor)

    return database.read(explain)


def _full_scan(driver: str, plan: str) -> bool:
    """True when the plan reads all of job_run (peewee aliases it `t1`)."""
    lines = plan.splitlines()
    if driver == "sqlite":
        return any(
            line.split(" USING")[0] in ("SCAN t1", "SCAN job_run") and "INDEX" not in line
            for line in lines
        )
    if driver == "postgres":
        return "Seq Scan on job_run" in plan
    return any(
        ("'table': 't1'" in line or "'table': 'job_run'" in line) and "'type': 'ALL'" in line
        for line in lines
    )


def _bounded(driver: str, plan: str) -> bool:
    """True when the index range on job_run itself stops at a `scheduled_at` bound.

    A bound applied only as a filter still avoids a full scan, yet reads every newer row
    before the page: a deep page of a million runs cost 140 ms that way on PostgreSQL.
    """
    lines = plan.splitlines()
    if driver == "sqlite":
        return any(line.startswith("SEARCH t1") and "scheduled_at<" in line for line in lines)
    if driver == "postgres":
        return any("Index Cond:" in line and "scheduled_at <=" in line for line in lines)
    return any("'table': 't1'" in line and "'type': 'range'" in line for line in lines)


def test_it_recognises_a_full_scan() -> None:
    assert _full_scan("sqlite", "SCAN t1")
    assert not _full_scan("sqlite", "SCAN t1 USING INDEX idx_job_run_scheduled_at")
    assert _full_scan("postgres", "Limit\n  ->  Seq Scan on job_run t1")
    assert _full_scan("mysql", "{'table': 't1', 'type': 'ALL', 'key': None}")
    assert not _full_scan("mysql", "{'table': 't1', 'type': 'range', 'key': 'PRIMARY'}")
    assert _bounded("sqlite", "SEARCH t1 USING INDEX idx_job_run_scheduled_at (scheduled_at<?)")
    assert not _bounded("sqlite", "SCAN t1 USING INDEX idx_job_run_scheduled_at")
    assert not _bounded("postgres", "Index Scan Backward\n  Filter: (scheduled_at <= '2026')")
    assert _bounded("postgres", "Index Scan Backward\n  Index Cond: (scheduled_at <= '2026')")
    assert not _bounded("mysql", "{'table': 't1', 'type': 'index', 'key': 'idx'}")


HOUR = timedelta(hours=1)
FILTERS = {
    "newest first": queries.RunFilter(),
    "one job": queries.RunFilter(job_ids=(3,)),
    "several jobs": queries.RunFilter(job_ids=tuple(range(1, 11))),
    "one job in a window": queries.RunFilter(
        job_ids=(3,), scheduled_from=NOW - 24 * HOUR, scheduled_to=NOW
    ),
    "status": queries.RunFilter(status=("failed",)),
    "started after": queries.RunFilter(started_after=NOW - HOUR),
    "ended before": queries.RunFilter(ended_before=T0 + HOUR),
    "running in a window (Gantt)": queries.RunFilter(
        running_after=NOW - 2 * HOUR, running_before=NOW
    ),
}


def _page(database: Database, f: queries.RunFilter) -> dict[str, Any]:
    return json.loads(database.read(queries.list_runs, f, NOW))


@pytest.fixture
def seeded(database: Database) -> Database:
    _seed(database)
    return database


def test_it_lists_runs_from_an_index(seeded: Database) -> None:
    bad = {}
    for label, f in FILTERS.items():
        plan = _plan(seeded, queries.runs_query(f, list(f.job_ids) if f.job_ids else None))
        if _full_scan(seeded.driver, plan):
            bad[label] = plan
    # The next page (keyset after a cursor) as well.
    cursor = _page(seeded, queries.RunFilter(limit=5))["nextCursor"]
    plan = _plan(seeded, queries.runs_query(queries.RunFilter(cursor=cursor), None))
    if _full_scan(seeded.driver, plan):
        bad["next page"] = plan
    assert not bad, bad


def test_it_reads_one_run_and_counts_states_from_an_index(seeded: Database) -> None:
    one = JobRun.select().where(JobRun.run_id == "r000000000000042")
    assert not _full_scan(seeded.driver, _plan(seeded, one))
    page = _page(seeded, queries.RunFilter(limit=3))
    assert (
        len(page["items"]) == 3
        and page["items"][0]["scheduledAt"] > page["items"][2]["scheduledAt"]
    )


def test_it_reads_one_jobs_runs_in_a_state_from_their_own_index(seeded: Database) -> None:
    # It should read just the page (migrations/*/002_api_indexes.sql), not every run of the
    # job, and the next page should start inside that index too.
    f = queries.RunFilter(job_ids=(3,), status=("failed",), limit=5)
    cursor = _page(seeded, f)["nextCursor"]
    for page in (f, replace(f, cursor=cursor)):
        plan = _plan(seeded, queries.runs_query(page, [3]))
        assert "idx_job_run_job_id_status_scheduled_at" in plan, plan
    assert _bounded(seeded.driver, plan), plan


def test_it_starts_the_next_page_inside_the_index(seeded: Database) -> None:
    cursor = _page(seeded, queries.RunFilter(limit=5))["nextCursor"]
    plan = _plan(seeded, queries.runs_query(queries.RunFilter(cursor=cursor), None))
    assert _bounded(seeded.driver, plan), plan
