"""Run events: every applied state change of a run and its attempts, written by the syncer
(on all three databases), and a run's life in order at GET /runs/{id}/events."""

from __future__ import annotations

from datetime import timedelta

from itinerary import history, messages
from itinerary.clock import FakeClock
from itinerary.db import Database
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.test_syncer import T0, claim, flush, save_job, start, stop


def _life(database: Database, run_id: str) -> list[tuple]:
    events = database.read(history.events_of, run_id)
    return [(e["scope"], e["attempt"], e["from"], e["to"], e["reason"]) for e in events]


def test_it_records_each_state_change_of_a_retried_run(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rlife"))
    t = T0 + timedelta(seconds=1)
    syncer.inbox.put(messages.RunUpdate("rlife", t, status="starting", attempt=1))
    syncer.inbox.put(messages.RunUpdate("rlife", t, status="running", attempt=1, started_at=t))
    flush(syncer.inbox, clock)  # the rest in a second transaction, against the stored row
    t2 = t + timedelta(seconds=5)
    fail = dict(attempt_status="failed", error="exit code 3", exit_code=3)
    syncer.inbox.put(messages.RunUpdate("rlife", t2, attempt=1, **fail))
    syncer.inbox.put(messages.RunUpdate("rlife", t2, status="running", attempt=2))
    syncer.inbox.put(messages.RunUpdate("rlife", t2, status="succeeded", attempt=2, reason="ok"))
    flush(syncer.inbox, clock)
    assert _life(database, "rlife") == [
        ("run", 1, None, "scheduled", None),
        ("run", 1, "scheduled", "starting", None),
        ("run", 1, "starting", "running", None),
        ("attempt", 1, "running", "failed", "exit code 3"),
        ("attempt", 2, None, "running", None),
        ("run", 2, "running", "succeeded", "ok"),
    ]
    stop(syncer.inbox, g)


def test_it_records_no_event_for_a_refused_change(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rdone"))
    t = T0 + timedelta(seconds=3)
    syncer.inbox.put(messages.RunUpdate("rdone", t, status="killed", reason="cancelled"))
    flush(syncer.inbox, clock)
    syncer.inbox.put(messages.RunUpdate("rdone", t + timedelta(1), status="running"))
    syncer.inbox.put(messages.RunUpdate("rdone", t - timedelta(1), status="waiting"))
    syncer.inbox.put(messages.RunUpdate("rdone", t + timedelta(2), reason="no state change"))
    flush(syncer.inbox, clock)
    assert [e[3] for e in _life(database, "rdone")] == ["scheduled", "killed"]
    stop(syncer.inbox, g)


def test_it_records_a_lost_claim_with_no_event(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    ours, theirs = claim(job.id, run_id="rours"), claim(job.id, run_id="rtheirs")
    syncer.inbox.put(ours)
    syncer.inbox.put(theirs)
    flush(syncer.inbox, clock)
    assert theirs.reply.get() is False
    assert len(_life(database, "rours")) == 1 and _life(database, "rtheirs") == []
    stop(syncer.inbox, g)


def test_it_shows_a_run_life_in_order_in_the_api(api: Api):
    job = api.create_job()
    run_id = api.post(f"/runs/{job['id']}", json={}).get_json()["runId"]
    assert api.delete(f"/runs/{run_id}?reason=not+today").status_code == 202
    body = api.get(f"/runs/{run_id}/events").get_json()
    assert body["runId"] == run_id
    assert [(e["from"], e["to"], e["reason"]) for e in body["items"]] == [
        (None, "scheduled", None),
        ("scheduled", "killed", "not today"),
    ]
    assert body["items"][0]["at"] == "2026-03-01T12:00:00Z"
    assert api.get("/runs/rzzzzzzzzzzzzzzz/events").status_code == 404
