"""The statistics' and the detector's reads of `job_run` come from an index on all three
databases (the seeding and plan reading of tests/test_query_plans.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from itinerary import history, jobpage, jobstats, rollup
from itinerary.anomaly import detector
from itinerary.db import Database
from tests.test_query_plans import NOW, _full_scan, _plan, _seed


@pytest.fixture
def seeded(database: Database) -> Database:
    _seed(database)
    return database


def test_it_reads_a_job_window_its_history_and_recent_slots_from_an_index(seeded: Database):
    plans = {
        "job stats window": jobstats.window_query(3, NOW - timedelta(days=7), NOW),
        "job stats hour counts": rollup.stamp_query(3, NOW - timedelta(days=30), NOW),
        "job chart buckets": jobpage.window_rows_queries(3, "30d", NOW, "Asia/Kolkata")[0],
        "job chart trend": jobpage.window_rows_queries(3, "30d", NOW, "Asia/Kolkata")[1],
        "detector history": detector.history_query(3, "r000000000000042"),
        "silence check": detector.recorded_query(NOW - timedelta(minutes=2), NOW),
    }
    bad = {k: p for k, q in plans.items() if _full_scan(seeded.driver, p := _plan(seeded, q))}
    assert not bad, bad


def test_it_reads_a_run_events_and_a_job_anomalies_by_their_index(seeded: Database):
    events = history.RunEvent.select().where(history.RunEvent.run_id == "r000000000000042")
    anomalies = history.Anomaly.select().where(history.Anomaly.job_id == 3)
    for query, index in ((events, "idx_run_events_run_id_at"), (anomalies, "idx_anomalies_job")):
        plan = _plan(seeded, query)
        assert index in plan, plan
