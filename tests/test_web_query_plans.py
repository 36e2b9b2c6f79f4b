"""The web pages' own reads on `job_run` are answered from an index, on all three databases."""

from __future__ import annotations

import pytest

from itinerary.db import Database
from itinerary.web import reads
from tests.test_query_plans import NOW, _full_scan, _plan, _seed


@pytest.fixture
def seeded(database: Database) -> Database:
    _seed(database)
    return database


def test_it_reads_the_running_page_from_indexes(seeded: Database) -> None:
    queries = {
        "active": reads.active_query("running"),
        "recent": reads.recent_query(NOW),
        "ended": reads.ended_query(NOW),
    }
    for name, query in queries.items():
        plan = _plan(seeded, query)
        assert not _full_scan(seeded.driver, plan), (name, plan)


def test_it_reads_only_the_active_runs_through_the_status_index(seeded: Database) -> None:
    # Not a backward walk of the scheduled_at index through every finished run.
    for status in ("scheduled", "waiting", "starting", "running"):
        plan = _plan(seeded, reads.active_query(status))
        assert "status_scheduled_at" in plan, plan


def test_it_reads_a_jobs_last_run_and_usual_duration_from_indexes(seeded: Database) -> None:
    for query in (reads.last_run_query(3), reads.successes_query(3)):
        plan = _plan(seeded, query)
        assert not _full_scan(seeded.driver, plan), plan


def test_it_finds_a_runs_children_from_an_index(seeded: Database) -> None:
    plan = _plan(seeded, reads.children_query("r000000000000042"))
    assert not _full_scan(seeded.driver, plan), plan
    assert "parent_run_id" in plan or "idx_job_run_parent_run_id" in plan, plan
