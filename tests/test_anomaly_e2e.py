"""End to end: a real Itinerary (SQLite, local executor, real HTTP) runs a real process
that ends far sooner than the job's history says; the anomaly is found, explained,
counted at /metrics, and the run's life is at /runs/{id}/events."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from gevent.pywsgi import WSGIServer

from itinerary import config as cfg
from itinerary import db as dbmod
from itinerary import models
from itinerary.app import App


@pytest.fixture
def receiver():
    """A real HTTP endpoint on loopback that keeps the JSON bodies posted to it."""
    seen: list[dict] = []

    def app(environ, start_response):
        seen.append(json.loads(environ["wsgi.input"].read()))
        start_response("200 OK", [])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", None, seen
    server.stop()


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
    database.write(lambda: models.JobRun.insert_many(rows).execute(database.writer))
    database.close()


def _eventually(fetch, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = fetch()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("not within the deadline")


def _start(tmp_path):
    dsn = f"sqlite:///{tmp_path}/it.db"
    config = dataclasses.replace(
        cfg.load(None, {}), db_dsn=dsn, port=0, log_dir=str(tmp_path / "logs")
    )
    app = App(config)
    app.start()
    return app, dsn


@pytest.mark.covers("on_anomaly")
def test_it_finds_a_run_that_ended_too_soon_in_a_running_itinerary(tmp_path, receiver):
    url, _, seen = receiver
    app, dsn = _start(tmp_path)
    try:
        api = f"{app.url}/api/v1"
        hook = {"type": "webhook", "trigger": "on_anomaly", "config": {"url": url}}
        body = {"name": "backup", "commands": [["true"]], "actions": [hook]}
        job = requests.post(f"{api}/jobs", json=body, timeout=5).json()
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
        [delivered] = _eventually(lambda: list(seen))
        assert delivered["event"] == "on_anomaly" and delivered["runId"] == run_id
        assert delivered["explanation"] == items[0]["explanation"]
    finally:
        app.stop()


def test_it_shows_the_life_of_a_run_retried_after_a_failed_attempt(tmp_path):
    app, _ = _start(tmp_path)
    flag = tmp_path / "second"
    retry = {"type": "retry", "trigger": "on_failure", "config": {"maxRetries": 1}}
    script = f"test -f {flag} || {{ touch {flag}; exit 3; }}"
    body = {"name": "flaky", "commands": [["sh", "-c", script]], "actions": [retry]}
    try:
        api = f"{app.url}/api/v1"
        job = requests.post(f"{api}/jobs", json=body, timeout=5).json()
        run_id = requests.post(f"{api}/runs/{job['id']}", json={}, timeout=5).json()["runId"]
        events = _eventually(
            lambda: _ended(requests.get(f"{api}/runs/{run_id}/events", timeout=5).json())
        )
        assert [(e["scope"], e["attempt"], e["to"]) for e in events] == [
            ("run", 1, "scheduled"),
            ("run", 1, "starting"),
            ("run", 1, "running"),
            ("attempt", 1, "failed"),
            ("attempt", 2, "running"),
            ("run", 2, "succeeded"),
        ]
        assert events[3]["reason"] == "exit code 3"
    finally:
        app.stop()


def _ended(body):
    items = body["items"]
    return items if items and items[-1]["to"] == "succeeded" else None
