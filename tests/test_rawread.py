"""Long reads yield to the gevent hub between slices of rows (itinerary/rawread.py), and
the job statistics computed that way are the ones of the one-call form."""

from __future__ import annotations

import gevent
import pytest

from itinerary import jobstats, queries, rawread
from itinerary.db import Database
from itinerary.models import JobRun
from tests.test_job_stats import NOW, seed
from tests.test_syncer import save_job


def _turns_during(fn, *args):  # type: ignore[no-untyped-def]
    """`fn(*args)` and how many times another greenlet ran meanwhile."""
    turns = []

    def ticker() -> None:
        while True:
            turns.append(1)
            gevent.sleep(0)

    tick = gevent.spawn(ticker)
    gevent.sleep(0)
    turns.clear()
    try:
        return fn(*args), len(turns)
    finally:
        tick.kill()


def test_it_gives_the_hub_a_turn_between_slices_of_a_window(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    job = save_job(database)
    rows = seed(database, job.id, count=1000)  # hourly: ~720 in 30 days
    inside = sum(r["scheduled_at"] >= NOW - jobstats.WINDOWS["30d"] for r in rows)
    monkeypatch.setattr(rawread, "CHUNK", 50)
    slices = []  # the reader's own yields, after each slice (SQLite: none, it is in a thread)
    turn = rawread._turn
    monkeypatch.setattr(rawread, "_turn", lambda: slices.append(turn()))
    read, turns = _turns_during(database.read, jobstats.window_rows, job.id, "30d", NOW)
    assert len(read["rows"]) == inside
    assert turns >= inside // 50
    assert len(slices) >= (inside // 50 if database.driver != "sqlite" else 0)
    stats = jobstats.compute(database, job.id, "30d", NOW)
    assert stats["runs"] == inside
    assert stats == database.read(jobstats.job_stats, job.id, "30d", NOW)


def test_it_reads_the_same_rows_as_the_driver_in_one_go(database: Database):
    job = save_job(database)
    seed(database, job.id, count=500)
    query = jobstats.window_query(job.id, NOW - jobstats.WINDOWS["30d"], NOW)
    sliced = database.read(rawread.fetch, query.order_by(JobRun.scheduled_at))
    whole = database.read(queries._raw, query.order_by(JobRun.scheduled_at))
    assert len(sliced) == 500 and [tuple(r) for r in sliced] == [tuple(r) for r in whole]
