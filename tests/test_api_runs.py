"""Run routes on all three databases: lists, filters, paging, manual runs, cancel, logs."""

from __future__ import annotations

from datetime import timedelta

from itinerary import messages
from itinerary.db import ActionRun, ConstraintViolation, JobRun, RunAttempt
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture


def _slots(api: Api, job_id: int, count: int, **kw: object) -> list[str]:
    start = api.clock.now() - timedelta(hours=count)
    return [api.add_run(job_id, start + timedelta(hours=i), **kw) for i in range(count)]


def test_it_reads_a_run_by_run_id(api: Api) -> None:
    job = api.create_job()
    t = api.clock.now() - timedelta(minutes=10)
    run_id = api.add_run(
        job["id"],
        t,
        started_at=t,
        completed_at=t + timedelta(seconds=90),
        exit_code=0,
        handle={"pid": 42, "log": "a\nb"},
        args=["--x"],
    )
    run = api.get(f"/runs/{run_id}").get_json()
    assert run["runId"] == run_id and run["jobName"] == "report" and run["state"] == "succeeded"
    assert run["durationSeconds"] == 90 and run["handle"]["pid"] == 42
    assert run["scheduledAt"] == "2026-03-01T11:50:00Z" and run["args"] == ["--x"]
    assert api.get("/runs/rzzzzzzzzzzzzzzz").status_code == 404
    assert api.get("/runs/nope").status_code == 400  # neither a run id nor a job id


def test_it_shows_a_run_the_same_listed_and_alone(api: Api) -> None:
    job = api.create_job()
    t = api.clock.now() - timedelta(minutes=10, microseconds=-250)
    run_id = api.add_run(
        job["id"],
        t,
        status="running",
        started_at=t + timedelta(seconds=30),
        success=False,
        behind_schedule=True,
        parent_run_id="r000000000000001",
    )
    api.database.write(
        lambda: RunAttempt.insert(
            run_id=run_id, attempt=1, status="failed", started_at=t, exit_code=3, handle={"pid": 7}
        ).execute(api.database.writer)
    )
    alone = api.get(f"/runs/{run_id}").get_json()
    listed = api.get("/runs").get_json()["items"]
    assert listed == [
        {k: v for k, v in alone.items() if k not in ("attempts", "anomaly", "overrides")}
    ]
    assert alone["anomaly"] is None
    assert alone["scheduledAt"] == "2026-03-01T11:50:00.000250Z" and alone["endedAt"] is None
    # It should measure a running run up to now, and keep booleans and nulls as stored.
    assert alone["durationSeconds"] == 569.99975
    assert alone["success"] is False and alone["behindSchedule"] is True and alone["args"] is None
    assert alone["attempts"] == [
        {
            "attempt": 1,
            "state": "failed",
            "startedAt": "2026-03-01T11:50:00.000250Z",
            "endedAt": None,
            "exitCode": 3,
            "error": None,
            "executor": None,
            "handle": {"pid": 7},
        }
    ]


def test_it_lists_runs_as_they_are_now(api: Api) -> None:
    job = api.create_job()
    t = api.clock.now() - timedelta(minutes=10)
    running = api.add_run(job["id"], t, status="running", started_at=t)
    done = api.add_run(job["id"], t - timedelta(hours=1), status="failed", reason="exit 1")
    assert [r["durationSeconds"] for r in api.get("/runs").get_json()["items"]] == [600, None]
    # It should time a running run up to now, and show a finished run's row as it is now,
    # not as an earlier request served it.
    api.clock.advance(60)
    fix = JobRun.update(reason="exit 2").where(JobRun.run_id == done)
    api.database.write(lambda: fix.execute(api.database.writer))
    items = {r["runId"]: r for r in api.get("/runs").get_json()["items"]}
    assert items[running]["durationSeconds"] == 660 and items[done]["reason"] == "exit 2"


def test_it_lists_a_jobs_runs_by_numeric_id_and_window(api: Api) -> None:
    job = api.create_job()
    _slots(api, job["id"], 5)
    everything = api.get(f"/runs/{job['id']}").get_json()["items"]
    assert len(everything) == 5
    assert everything[0]["scheduledAt"] > everything[-1]["scheduledAt"]
    window = api.get(f"/runs/{job['id']}?start_time=-3h&end_time=-1h").get_json()["items"]
    assert [r["scheduledAt"] for r in window] == ["2026-03-01T10:00:00Z", "2026-03-01T09:00:00Z"]
    same = api.get(f"/jobs/{job['id']}/runs?start_time=-3h&end_time=-1h").get_json()["items"]
    assert same == window
    assert api.get("/runs/12345").status_code == 404
    assert api.get(f"/runs/{job['id']}?start_time=yesterday").status_code == 400


def test_it_filters_runs(api: Api) -> None:
    etl = api.create_job(name="etl", tags=["data"])
    web = api.create_job(name="web")
    _slots(api, etl["id"], 2, status="failed")
    _slots(api, web["id"], 3)

    def count(query: str) -> int:
        resp = api.get("/runs?" + query)
        assert resp.status_code == 200, resp.get_json()
        return len(resp.get_json()["items"])

    assert count("") == 5
    assert count(f"job_id={etl['id']}") == 2
    assert count("name=we*") == 3
    assert count("tags=data") == 2
    assert count("status=failed,killed") == 2
    assert count("name=nothing") == 0
    assert api.get("/runs?status=exploded").status_code == 400
    assert api.get("/runs?job_id=x").status_code == 400


def test_it_selects_runs_by_time(api: Api) -> None:
    job = api.create_job()
    now = api.clock.now()
    h = timedelta(hours=1)
    api.add_run(job["id"], now - 5 * h, started_at=now - 5 * h, completed_at=now - 4 * h)
    api.add_run(job["id"], now - 3 * h, started_at=now - 3 * h, completed_at=now - 2 * h)
    api.add_run(job["id"], now - h, status="running", started_at=now - h)
    api.add_run(job["id"], now + h, status="scheduled")

    def slots(query: str) -> list[str]:
        return [r["scheduledAt"][11:16] for r in api.get("/runs?" + query).get_json()["items"]]

    assert slots("started_after_time=-3h") == ["11:00", "09:00"]
    assert slots("ended_before_time=2026-03-01T08:30:00Z") == ["07:00"]
    # It should select runs overlapping a window, the running one included (Gantt chart).
    assert slots("running_after_time=-150m&running_before_time=-30m") == ["11:00", "09:00"]
    assert slots("running_after_time=-4h30m&running_before_time=-4h15m") == ["07:00"]


def test_it_pages_runs_stably_under_inserts(api: Api) -> None:
    job = api.create_job()
    _slots(api, job["id"], 5)
    first = api.get("/runs?limit=2").get_json()
    # It should neither repeat nor skip a run when newer runs arrive between pages.
    api.add_run(job["id"], api.clock.now() + timedelta(minutes=1))
    second = api.get(f"/runs?limit=2&cursor={first['nextCursor']}").get_json()
    third = api.get(f"/runs?limit=2&cursor={second['nextCursor']}").get_json()
    seen = [r["scheduledAt"] for p in (first, second, third) for r in p["items"]]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen, reverse=True)
    assert third["nextCursor"] is None


def test_it_starts_a_manual_run(api: Api) -> None:
    job = api.create_job(manualRunModifiableFields=["args"])
    resp = api.post(f"/runs/{job['id']}", json={"args": ["--day", "1"], "startTime": "+5m"})
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["startAt"] == "2026-03-01T12:05:00Z"
    run = api.get(f"/runs/{body['runId']}").get_json()
    assert run["trigger"] == "manual" and run["args"] == ["--day", "1"]
    assert api.post(f"/runs/{job['id']}").status_code == 202  # no body: defaults


def test_it_refuses_manual_runs_it_must_not_start(api: Api) -> None:
    locked = api.create_job(name="locked", manuallyRunnable=False)
    fixed = api.create_job(name="fixed")
    resp = api.post(f"/runs/{locked['id']}")
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "not_runnable"
    resp = api.post(f"/runs/{fixed['id']}", json={"resources": {"limits": {"cpu": "1"}}})
    assert resp.status_code == 403 and "resources" in resp.get_json()["error"]["fields"]
    assert api.post("/runs/999").status_code == 404
    bad = api.post(f"/runs/{fixed['id']}", json={"startTime": "-2h", "colour": 1})
    assert set(bad.get_json()["error"]["fields"]) == {"colour"}
    assert api.post(f"/runs/{fixed['id']}", json={"start-time": "-2h"}).status_code == 400


def test_it_maps_the_schedulers_refusal(api: Api) -> None:
    job = api.create_job()
    api.scheduler.jobs.pop(job["id"])  # the loop no longer knows it (archived elsewhere)
    resp = api.post(f"/runs/{job['id']}")
    assert resp.status_code == 404 and "does not exist" in resp.get_json()["error"]["message"]


def test_it_cancels_an_active_run_only(api: Api) -> None:
    job = api.create_job()
    run_id = api.post(f"/runs/{job['id']}").get_json()["runId"]
    resp = api.delete(f"/runs/{run_id}?reason=wrong+day")
    assert resp.status_code == 202
    assert isinstance(api.scheduler.seen[-1], messages.CancelRun)
    assert api.scheduler.seen[-1].reason == "wrong day"
    again = api.delete(f"/runs/{run_id}")
    assert again.status_code == 409
    assert again.get_json()["error"]["fields"] == {"state": "killed"}
    assert api.delete("/runs/rzzzzzzzzzzzzzzz").status_code == 404


def test_it_lists_violations_and_actions(api: Api) -> None:
    job = api.create_job()
    run_id = api.add_run(job["id"], api.clock.now())
    at = api.clock.now()

    def seed() -> None:
        w = api.database.writer
        ConstraintViolation.insert(
            id=7, run_id=run_id, constraint_type_id=6, violation_time=at, details={"limit": "20m"}
        ).execute(w)
        ActionRun.insert(
            id=8,
            run_id=run_id,
            action_type_id=3,
            trigger="on_violation",
            constraint_violation_id=7,
            executed_at=at,
            success=True,
        ).execute(w)

    api.database.write(seed)
    violations = api.get(f"/runs/{run_id}/violations").get_json()["items"]
    assert violations == [
        {
            "id": "7",
            "runId": run_id,
            "constraint": "maxExpectedRunTime",
            "at": "2026-03-01T12:00:00Z",
            "details": {"limit": "20m"},
        }
    ]
    actions = api.get(f"/runs/{run_id}/actions").get_json()["items"]
    assert actions[0]["action"] == "webhook" and actions[0]["violationId"] == "7"
    assert api.get("/runs/rzzzzzzzzzzzzzzz/actions").status_code == 404


def test_it_reads_logs_through_the_executor(api: Api) -> None:
    job = api.create_job()
    done = api.add_run(job["id"], api.clock.now(), handle={"log": "one\ntwo\nthree"})
    waiting = api.add_run(job["id"], api.clock.now() + timedelta(hours=1), status="scheduled")
    gone = api.add_run(job["id"], api.clock.now() - timedelta(hours=1), handle={"gone": True})
    assert api.get(f"/runs/{done}/logs?tail=2").get_json()["text"] == "two\nthree"
    assert api.get(f"/runs/{waiting}/logs").status_code == 409
    assert api.get(f"/runs/{gone}/logs").status_code == 503
    assert api.get(f"/runs/{done}/logs?tail=0").status_code == 400
