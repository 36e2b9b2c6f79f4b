"""End to end: a real Itinerary (SQLite, local executor, real HTTP) runs a real process
that ends far sooner than the job's history says; the anomaly is found, explained,
counted at /metrics, and the run's life is at /runs/{id}/events."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import requests

from itinerary import config as cfg
from itinerary import db as dbmod
from itinerary.app import App


def _seed_history(dsn: str, job_id: int, count: int) -> None:
    database = dbmod.Database(dbmod.parse_dsn(dsn))
    start = datetime.now(UTC) - timedelta(days=3)
    rows = [
        dict(
            job_id=job_id,
            scheduled_at=start + timedelta(hours=n),
            run_id=f"rhist{n:011d}",
            status="succeeded",
            started_at=start + timedelta(hours=n),
            completed_at=start + timedelta(hours=n, seconds=30 + n % 3),
            created_at=start,
            updated_at=start,
        )
        for n in range(count)
    ]
    database.write(lambda: dbmod.JobRun.insert_many(rows).execute(database.writer))
    database.close()


def _eventually(fetch, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = fetch()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("not within the deadline")


def test_it_finds_a_run_that_ended_too_soon_in_a_running_itinerary(tmp_path):
    dsn = f"sqlite:///{tmp_path}/it.db"
    config = dataclasses.replace(
        cfg.load(None, {}), db_dsn=dsn, port=0, log_dir=str(tmp_path / "logs")
    )
    app = App(config)
    app.start()
    try:
        api = f"{app.url}/api/v1"
        job = requests.post(
            f"{api}/jobs", json={"name": "backup", "commands": [["true"]]}, timeout=5
        ).json()
        _seed_history(dsn, job["id"], 20)
        run_id = requests.post(f"{api}/runs/{job['id']}", json={}, timeout=5).json()["runId"]
        items = _eventually(
            lambda: requests.get(f"{api}/jobs/{job['id']}/anomalies", timeout=5).json()["items"]
        )
        assert [(a["kind"], a["runId"]) for a in items] == [("duration", run_id)]
        assert "; the last 20 successful runs took 31s median," in items[0]["explanation"]
        assert items[0]["explanation"].endswith("MADs below")
        metrics = requests.get(f"{app.url}/metrics", timeout=5).text
        assert 'itinerary_anomalies_total{kind="duration"} 1.0' in metrics
        events = requests.get(f"{api}/runs/{run_id}/events", timeout=5).json()["items"]
        assert [e["to"] for e in events] == ["scheduled", "starting", "running", "succeeded"]
    finally:
        app.stop()
