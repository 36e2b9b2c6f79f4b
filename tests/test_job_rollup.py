"""The per-hour roll-up (itinerary/rollup.py): figures read through stored hours equal the
ones read from the rows, on every database; a changed hour is recomputed."""

from __future__ import annotations

from datetime import timedelta

from itinerary import jobstats, rollup
from itinerary.clock import FakeClock
from itinerary.db import Database
from itinerary.models import JobRun
from tests.test_job_stats import NOW, expected, seed
from tests.test_syncer import flush, save_job, start, stop


def stored_hours(database: Database, job_id: int) -> int:
    return database.read(rollup.JobRunHour.select().where(rollup.JobRunHour.job_id == job_id).count)


def store_all(database: Database, clock: FakeClock, job_id: int) -> dict:
    """Each window's figures computed from the rows, their hours stored by the syncer."""
    syncer, greenlet = start(database, clock)
    store = jobstats.rollup_store(syncer.inbox, NOW)
    got = {w: jobstats.compute(database, job_id, w, NOW, store) for w in jobstats.WINDOWS}
    flush(syncer.inbox, clock)
    stop(syncer.inbox, greenlet)
    return got


def test_it_gives_the_same_figures_from_stored_hours_as_from_rows(
    database: Database, clock: FakeClock
):
    job = save_job(database)
    rows = seed(database, job.id, count=800)  # one run an hour, a moment before it ends
    from_rows = store_all(database, clock, job.id)
    running = sum(r["status"] == "running" for r in rows[-719:])
    assert stored_hours(database, job.id) == 719 - running  # unfinished hours are not kept
    for window, want in from_rows.items():
        read = database.read(jobstats.window_rows, job.id, window, NOW)
        assert len(read["rows"]) <= running and read["stored"]
        assert database.read(jobstats.job_stats, job.id, window, NOW) == want
    half = NOW - timedelta(minutes=30)  # a partial hour at each end, read as rows
    since = half - timedelta(days=7)
    ends = {r["run_id"] for r in rows if since <= r["scheduled_at"] < since + timedelta(hours=1)}
    unfinished = {r["run_id"] for r in rows[-168:] if r["status"] == "running"}
    read = database.read(jobstats.window_rows, job.id, "7d", half)
    assert len(read["rows"]) == len(ends | unfinished) and len(ends) == 1
    assert database.read(jobstats.job_stats, job.id, "7d", half)["runs"] == 168


def test_it_recomputes_a_stored_hour_whose_runs_changed(database: Database, clock: FakeClock):
    job = save_job(database)
    rows = seed(database, job.id, count=200)
    store_all(database, clock, job.id)
    slot = NOW - timedelta(hours=5, minutes=30)  # a catch-up run into a stored hour
    late = dict(rows[0], scheduled_at=slot, run_id="rcatchup", status="succeeded")
    late.update(started_at=slot, completed_at=slot + timedelta(hours=3), updated_at=NOW)
    database.write(lambda: JobRun.insert(late).execute(database.writer))
    got = database.read(jobstats.job_stats, job.id, "24h", NOW)
    want = expected(rows + [late], 1)
    assert got["runs"] == want["runs"] == 24 and got["durationSeconds"]["max"] == want["max"]
    assert len(database.read(jobstats.window_rows, job.id, "24h", NOW)["rows"]) >= 2
