"""A job's audit trail and merged events feed on all three databases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from itinerary import audit, jobfiles, jobstore
from itinerary.models import ActionRun, ConstraintViolation, WebhookDelivery
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture


def _seed_run_events(api: Api, job_id: int) -> str:
    """A failed run at T-50m with a violation (T-49m), an action (T-48m), a delivery (T-47m)."""
    now = api.clock.now()
    t = now - timedelta(minutes=50)
    run_id = api.add_run(
        job_id, t, status="failed", started_at=t, completed_at=t + timedelta(seconds=5)
    )

    def seed() -> None:
        w = api.database.writer
        ConstraintViolation.insert(
            id=71, run_id=run_id, constraint_type_id=6, violation_time=t + timedelta(minutes=1)
        ).execute(w)
        ActionRun.insert(
            id=72,
            run_id=run_id,
            action_type_id=1,
            trigger="on_failure",
            executed_at=t + timedelta(minutes=2),
            success=True,
        ).execute(w)
        WebhookDelivery.insert(
            id=73,
            run_id=run_id,
            webhook_type="slack",
            trigger="on_failure",
            url="https://hooks.example/x",
            attempt_count=1,
            status_code=200,
            success=True,
            created_at=t + timedelta(minutes=3),
        ).execute(w)

    api.database.write(seed)
    return run_id


def test_it_lists_violation_action_delivery_pause_and_edit_in_order(api: Api) -> None:
    api.clock.advance(-3600)
    job = api.create_job(name="etl")  # created at T-60m
    api.clock.advance(3600)
    run_id = _seed_run_events(api, job["id"])
    api.clock.advance(60)
    paused = api.post(f"/jobs/{job['id']}/pause", json={"reason": "db upgrade"}).get_json()
    api.clock.advance(60)
    assert api.put(f"/jobs/{job['id']}", json={**paused, "description": "new"}).status_code == 200
    feed = api.get(f"/jobs/{job['id']}/events").get_json()["items"]
    assert [(e["type"], e["summary"]) for e in feed] == [
        ("change", "edited: description by loopback"),
        ("change", "paused by loopback"),
        ("delivery", "slack alert on on_failure: delivered (200)"),
        ("action", "retry on on_failure: done"),
        ("violation", "maxExpectedRunTime violated"),
        ("change", "created by loopback"),
    ]
    assert all(e["runId"] == run_id for e in feed[2:5])


def test_it_pages_back_in_time_and_filters_by_type(api: Api) -> None:
    api.clock.advance(-3600)
    job = api.create_job(name="etl")
    api.clock.advance(3600)
    _seed_run_events(api, job["id"])
    first = api.get(f"/jobs/{job['id']}/events?limit=2").get_json()
    assert [e["type"] for e in first["items"]] == ["delivery", "action"]
    rest = api.get(f"/jobs/{job['id']}/events?limit=2&before={first['nextBefore']}").get_json()
    assert [e["type"] for e in rest["items"]] == ["violation", "change"]
    assert rest["nextBefore"] is None
    only = api.get(f"/jobs/{job['id']}/events?type=change").get_json()["items"]
    assert [e["summary"] for e in only] == ["created by loopback"]
    assert api.get(f"/jobs/{job['id']}/events?type=gossip").status_code == 400
    assert api.get("/jobs/999999/events").status_code == 404


def test_it_derives_healthy_failing_flips_from_finished_runs(api: Api) -> None:
    job = api.create_job(name="etl")
    now = api.clock.now()
    for i, status in enumerate(("succeeded", "failed", "killed", "succeeded", "succeeded")):
        t = now - timedelta(hours=5 - i)
        api.add_run(
            job["id"], t, status=status, started_at=t, completed_at=t + timedelta(seconds=1)
        )
    feed = api.get(f"/jobs/{job['id']}/events?type=flip").get_json()["items"]
    assert [e["summary"] for e in feed] == [
        "Failing → Healthy (succeeded)",
        "Healthy → Failing (failed)",
    ]


def test_it_records_resume_and_archive_and_skips_unchanged_saves(api: Api) -> None:
    job = api.create_job(name="etl")
    api.post(f"/jobs/{job['id']}/pause", json={})
    api.post(f"/jobs/{job['id']}/resume")
    same = api.get(f"/jobs/{job['id']}").get_json()
    api.put(f"/jobs/{job['id']}", json=same)
    api.delete(f"/jobs/{job['id']}")
    rows = api.database.read(audit.of_job, job["id"], None, 10)
    assert [r["action"] for r in rows] == ["archived", "resumed", "paused", "created"]


def test_it_records_apply_as_the_actor(api: Api, tmp_path: Path) -> None:
    job = api.create_job(name="etl")
    file = tmp_path / "jobs.yaml"
    file.write_text("name: etl\ncommands: [[echo, hi]]\nschedule: '*/10 * * * *'\n")
    live = api.database.read(jobstore.load_jobs)
    changes = jobfiles.plan(
        jobfiles.read_documents(file.read_text(), str(file)), live, prune=False, source="f"
    )
    jobfiles.apply_to_database(api.database, changes)
    rows = api.database.read(audit.of_job, job["id"], None, 10)
    assert rows[0]["actor"] == "apply" and rows[0]["action"] == "edited"
    assert rows[0]["changes"] == ["commands", "schedule"]
