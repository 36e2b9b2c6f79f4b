"""The history pages' queries on `job_run` are answered from an index, on all three databases
(the seeding and plan reading of tests/test_query_plans.py)."""

from __future__ import annotations

from datetime import timedelta

from itinerary import gantt, jobevents, queries
from itinerary.db import Database
from itinerary.models import JobRun
from tests.test_query_plans import NOW, _full_scan, _plan, seeded  # noqa: F401 - fixture

HOUR = timedelta(hours=1)


def test_it_reads_the_gantt_window_from_indexes(seeded: Database) -> None:  # noqa: F811
    for f in (
        gantt.GanttFilter(start=NOW - 24 * HOUR, end=NOW),
        gantt.GanttFilter(start=NOW - 24 * HOUR, end=NOW, status=("failed",), min_duration=30),
        gantt.GanttFilter(start=NOW - HOUR, end=NOW, updated_after=NOW - 60 * timedelta(seconds=1)),
    ):
        for name, query in gantt.window_queries(f, None, NOW).items():
            plan = _plan(seeded, query)
            assert not _full_scan(seeded.driver, plan), (name, plan)
        plan = _plan(seeded, gantt.window_queries(f, [3, 4], NOW)["slots"])
        assert not _full_scan(seeded.driver, plan), plan


def test_it_filters_run_length_inside_the_index_scan(seeded: Database) -> None:  # noqa: F811
    f = queries.RunFilter(min_duration=30, max_duration=60)
    assert not _full_scan(seeded.driver, _plan(seeded, queries.runs_query(f, None, NOW)))
    one_job = queries.RunFilter(job_ids=(3,), min_duration=30)
    assert not _full_scan(seeded.driver, _plan(seeded, queries.runs_query(one_job, [3], NOW)))


def test_it_reads_a_jobs_flips_from_its_own_rows(seeded: Database) -> None:  # noqa: F811
    q = (
        JobRun.select(JobRun.run_id, JobRun.status)
        .where((JobRun.job_id == 3) & JobRun.status.in_(["succeeded", *jobevents.FAILING]))
        .order_by(JobRun.scheduled_at.desc())
        .limit(jobevents.FLIP_SCAN)
    )
    assert not _full_scan(seeded.driver, _plan(seeded, q))
