"""Per-job statistics: seeded histories whose answers the test works out on its own,
identical on SQLite, PostgreSQL and MariaDB; the route and its window parameter."""

from __future__ import annotations

import random
import statistics
from datetime import timedelta

from itinerary import jobstats
from itinerary.db import Database
from itinerary.models import JobRun
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.test_syncer import T0, save_job

NOW = T0 + timedelta(days=40)


def seed(database: Database, job_id: int, count: int = 300, seed: int = 7) -> list[dict]:
    """`count` hourly runs ending at NOW: random states, durations, lateness, attempts."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        slot = NOW - timedelta(hours=count - n, microseconds=rng.randrange(1000))
        status = rng.choice(["succeeded"] * 6 + ["failed", "killed", "skipped", "running"])
        started = slot + timedelta(seconds=rng.uniform(0, 30))
        ended = None if status == "running" else started + timedelta(seconds=rng.uniform(5, 500))
        reason = (
            rng.choice(["exit code 1", "exit code 2", "OOMKilled"])
            if status != "succeeded"
            else None
        )
        rows.append(
            dict(
                job_id=job_id,
                scheduled_at=slot,
                run_id=f"r{job_id:03d}{n:012d}",
                trigger=rng.choice(["schedule", "schedule", "manual"]),
                attempt=rng.choice([1, 1, 1, 2, 3]),
                status=status,
                reason=reason,
                started_at=None if status == "skipped" else started,
                completed_at=None if status == "skipped" else ended,
                created_at=slot,
                updated_at=slot,
            )
        )
    database.write(lambda: JobRun.insert_many(rows).execute(database.writer))
    return rows


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def expected(rows: list[dict], days: int) -> dict:
    rows = [r for r in rows if r["scheduled_at"] >= NOW - timedelta(days=days)]
    ran = [r for r in rows if r["started_at"] and r["completed_at"]]
    durations = [(r["completed_at"] - r["started_at"]).total_seconds() for r in ran]
    late = [
        (r["started_at"] - r["scheduled_at"]).total_seconds()
        for r in rows
        if r["started_at"] and r["trigger"] == "schedule"
    ]
    ended = [r for r in rows if r["status"] in ("succeeded", "failed", "killed")]
    return {
        "runs": len(rows),
        "successRate": sum(r["status"] == "succeeded" for r in ended) / len(ended),
        "retries": sum(r["attempt"] - 1 for r in rows),
        "mean": statistics.fmean(durations),
        "p50": pct(durations, 50),
        "p95": pct(durations, 95),
        "max": max(durations),
        "late95": pct(late, 95),
        "failures": sum(r["reason"] == "OOMKilled" for r in ended if r["status"] != "succeeded"),
    }


def test_it_computes_a_job_window_as_an_independent_count_does(database: Database):
    job = save_job(database)
    rows = seed(database, job.id)
    got = database.read(jobstats.job_stats, job.id, "7d", NOW)
    want = expected(rows, 7)
    assert got["runs"] == want["runs"] == 167  # the run 168 h back is a moment too old
    assert (
        abs(got["successRate"] - want["successRate"]) < 1e-6 and got["retries"] == want["retries"]
    )
    d = got["durationSeconds"]
    assert [round(d[k], 4) for k in ("mean", "p50", "p95", "max")] == [
        round(want[k], 4) for k in ("mean", "p50", "p95", "max")
    ]
    assert round(got["startLatenessSeconds"]["p95"], 4) == round(want["late95"], 4)
    oom = next(f for f in got["failureReasons"] if f["reason"] == "OOMKilled")
    assert oom["count"] == want["failures"]


def test_it_gives_the_same_figures_for_each_window_on_every_database(database: Database):
    job = save_job(database)
    rows = seed(database, job.id, count=800)
    for window, days in (("24h", 1), ("7d", 7), ("30d", 30)):
        got = database.read(jobstats.job_stats, job.id, window, NOW)
        want = expected(rows, days)
        assert got["runs"] == want["runs"]
        assert round(got["durationSeconds"]["p50"], 4) == round(want["p50"], 4)
        assert sum(got["runsByState"].values()) == want["runs"]


def test_it_answers_an_empty_window_with_nulls(database: Database):
    job = save_job(database)
    got = database.read(jobstats.job_stats, job.id, "24h", NOW)
    assert got["runs"] == 0 and got["successRate"] is None
    assert got["durationSeconds"] == {"mean": None, "p50": None, "p95": None, "max": None}


def test_it_serves_job_stats_and_refuses_an_unknown_window(api: Api):
    job = api.create_job()
    t = api.clock.now() - timedelta(hours=2)
    api.add_run(job["id"], t, started_at=t, completed_at=t + timedelta(seconds=90))
    body = api.get(f"/jobs/{job['id']}/stats?window=7d").get_json()
    assert body["runs"] == 1 and body["durationSeconds"]["max"] == 90 and body["successRate"] == 1
    bad = api.get(f"/jobs/{job['id']}/stats?window=1y")
    assert bad.status_code == 400 and "window" in bad.get_json()["error"]["fields"]
    assert api.get("/jobs/999999/stats").status_code == 404


def test_it_reuses_a_jobs_figures_for_five_seconds_in_the_api(api: Api):
    job = api.create_job()
    t = api.clock.now() - timedelta(hours=2)
    api.add_run(job["id"], t, started_at=t, completed_at=t + timedelta(seconds=90))
    first = api.get(f"/jobs/{job['id']}/stats?window=24h").get_json()
    api.add_run(job["id"], t + timedelta(minutes=1), started_at=t, completed_at=t)
    assert api.get(f"/jobs/{job['id']}/stats?window=24h").get_json() == first
    api.clock.advance(jobstats.RECENT_S)
    again = api.get(f"/jobs/{job['id']}/stats?window=24h").get_json()
    assert again["runs"] == 2 and again["to"] > first["to"]
