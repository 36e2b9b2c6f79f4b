"""Job routes on all three databases: create, read, update, archive, pause, list, export."""

from __future__ import annotations

import yaml

from itinerary import messages
from tests.api_fakes import JOB, Api, api_fixture  # noqa: F401 - the `api` fixture

POD = {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}


def test_it_creates_a_job_and_tells_the_loop(api: Api) -> None:
    resp = api.post("/jobs", json={**JOB, "tags": ["b", "a"], "timezone": "Europe/Berlin"})
    assert resp.status_code == 201
    job = resp.get_json()
    assert job["id"] > 0 and job["name"] == "report" and job["timezone"] == "Europe/Berlin"
    assert job["createdAt"].endswith("Z") and sorted(job["tags"]) == ["a", "b"]
    # It should notify the scheduler at once, so the index is rebuilt for the job.
    assert api.scheduler.jobs[job["id"]].name == "report"
    assert api.get(f"/jobs/{job['id']}").get_json()["tags"] == ["a", "b"]


def test_it_refuses_a_duplicate_name(api: Api) -> None:
    api.create_job()
    resp = api.post("/jobs", json=JOB)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "conflict"


def test_it_names_every_bad_field(api: Api) -> None:
    body = {
        **JOB,
        "name": "Bad_Name",
        "schedule": "61 * * * *",
        "timezone": "Mars/Base",
        "constraints": {"catchUpWindow": "soon"},
        "colour": "red",
    }
    resp = api.post("/jobs", json=body)
    assert resp.status_code == 400
    fields = resp.get_json()["error"]["fields"]
    assert set(fields) >= {"name", "schedule", "timezone", "constraints.catchUpWindow", "colour"}
    assert fields["colour"] == "unknown field"


def test_it_checks_a_pod_spec_against_the_kubernetes_schema(api: Api) -> None:
    bad = {"containers": [{"name": "main", "image": "busybox", "imagePullPolcy": "Always"}]}
    resp = api.post("/jobs", json={"name": "pod", "podSpec": bad})
    assert resp.status_code == 400
    assert "podSpec" in resp.get_json()["error"]["fields"]
    assert api.post("/jobs", json={"name": "pod", "podSpec": POD}).status_code == 201


def test_it_rejects_bodies_that_are_not_json(api: Api) -> None:
    # It should refuse what a cross-site form can post.
    form = api.post("/jobs", data={"name": "x"})
    assert form.status_code == 415
    broken = api.post("/jobs", data="{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "body" in broken.get_json()["error"]["fields"]
    assert api.post("/jobs", json=[1]).status_code == 400


def test_it_updates_only_the_fields_given(api: Api) -> None:
    job = api.create_job(description="old")
    resp = api.put(f"/jobs/{job['id']}", json={"description": "new"})
    assert resp.status_code == 200
    assert resp.get_json()["description"] == "new"
    assert resp.get_json()["schedule"] == JOB["schedule"]
    assert api.scheduler.jobs[job["id"]].description == "new"


def test_it_accepts_a_job_it_served_back_unchanged(api: Api) -> None:
    job = api.create_job()
    assert api.put(f"/jobs/{job['id']}", json=job).status_code == 200
    assert api.put(f"/jobs/{job['id']}", json={**job, "id": job["id"] + 1}).status_code == 400


def test_it_answers_404_for_missing_jobs(api: Api) -> None:
    for path in ("/jobs/999", "/jobs/99999999999999999999"):
        assert api.get(path).status_code == 404


def test_it_answers_a_job_name_in_a_path_with_400_saying_ids_only(api: Api) -> None:
    api.create_job()
    for path in ("/jobs/report", "/runs/report"):
        resp = api.get(path)
        assert resp.status_code == 400
        assert "takes a numeric job id, not a name" in resp.get_json()["error"]["fields"]["job_id"]
    assert api.post("/runs/report", json={}).status_code == 400
    assert api.put("/jobs/999", json={"description": "x"}).status_code == 404
    assert api.delete("/jobs/999").status_code == 404


def test_it_archives_a_job_and_keeps_it_readable(api: Api) -> None:
    job = api.create_job()
    assert api.delete(f"/jobs/{job['id']}").status_code == 204
    assert job["id"] not in api.scheduler.jobs
    assert api.get(f"/jobs/{job['id']}").get_json()["archivedAt"] is not None
    assert api.put(f"/jobs/{job['id']}", json={"description": "x"}).status_code == 409
    assert api.delete(f"/jobs/{job['id']}").status_code == 404
    # It should free the name for a new job.
    assert api.post("/jobs", json=JOB).status_code == 201


def test_it_pauses_and_resumes(api: Api) -> None:
    job = api.create_job()
    paused = api.post(f"/jobs/{job['id']}/pause", json={"reason": "maintenance"}).get_json()
    assert paused["enabled"] is False and paused["pausedReason"] == "maintenance"
    assert api.post(f"/jobs/{job['id']}/pause", json={"why": 1}).status_code == 400
    resumed = api.post(f"/jobs/{job['id']}/resume")
    assert resumed.status_code == 200
    assert resumed.get_json()["enabled"] is True and resumed.get_json()["pausedReason"] is None
    assert isinstance(api.scheduler.seen[-1], messages.JobUpserted)


def test_it_skips_the_next_run_through_the_loop_and_says_which(api: Api) -> None:
    job = api.create_job()  # every 5 minutes; the fake clock is at 12:00:00
    resp = api.post(f"/jobs/{job['id']}/skip-next", json={"reason": "holiday"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"jobId": job["id"], "scheduledAt": "2026-03-01T12:05:00Z"}
    sent = api.scheduler.seen[-1]
    assert isinstance(sent, messages.SkipNext) and sent.reason == "holiday"
    assert api.post(f"/jobs/{job['id']}/skip-next", json={"why": 1}).status_code == 400
    assert api.post(f"/jobs/{job['id']}/skip-next").status_code == 200  # reason optional
    assert "skipped by" in api.scheduler.seen[-1].reason


def test_it_refuses_to_skip_when_there_is_no_next_run(api: Api) -> None:
    paused, manual = api.create_job(), api.create_job(name="manual", schedule=None)
    api.post(f"/jobs/{paused['id']}/pause")
    for job, code in ((paused, "paused"), (manual, "no_next")):
        resp = api.post(f"/jobs/{job['id']}/skip-next")
        assert resp.status_code == 409 and resp.get_json()["error"]["code"] == code
    api.delete(f"/jobs/{manual['id']}")
    resp = api.post(f"/jobs/{manual['id']}/skip-next")
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "archived"
    assert api.post("/jobs/999999/skip-next").status_code == 404


def test_it_filters_jobs(api: Api) -> None:
    api.create_job(name="etl-orders", tags=["etl", "team:sales"])
    api.create_job(name="etl-users", tags=["etl"], schedule="0 * * * *")
    api.create_job(name="backup", tags=["ops"], schedule=None)

    def names(query: str) -> list[str]:
        resp = api.get("/jobs?" + query)
        assert resp.status_code == 200, resp.get_json()
        return [j["name"] for j in resp.get_json()["items"]]

    assert names("") == ["backup", "etl-orders", "etl-users"]
    assert names("name_pattern=etl-*") == ["etl-orders", "etl-users"]
    assert names("name_pattern=user") == ["etl-users"]
    assert names("tags=etl,team:sales") == ["etl-orders"]
    assert names("tags=etl&tags=ops") == []
    assert names("tag_pattern=team:*") == ["etl-orders"]
    assert names("schedule=0%20*%20*%20*%20*") == ["etl-users"]
    assert names("schedule=") == ["backup"]


def test_it_pages_jobs_with_a_cursor(api: Api) -> None:
    for i in range(5):
        api.create_job(name=f"job-{i}")
    first = api.get("/jobs?limit=2").get_json()
    second = api.get(f"/jobs?limit=2&cursor={first['nextCursor']}").get_json()
    third = api.get(f"/jobs?limit=2&cursor={second['nextCursor']}").get_json()
    names = [j["name"] for page in (first, second, third) for j in page["items"]]
    assert names == [f"job-{i}" for i in range(5)] and third["nextCursor"] is None


def test_it_validates_list_parameters(api: Api) -> None:
    resp = api.get("/jobs?limit=1001&colour=red")
    assert resp.status_code == 400
    assert set(resp.get_json()["error"]["fields"]) == {"limit", "colour"}
    for cursor in ("zz", "WyJydW5zIiwiYSIsMV0"):  # garbage; a cursor of the runs listing
        resp = api.get(f"/jobs?cursor={cursor}")
        assert resp.status_code == 400 and "cursor" in resp.get_json()["error"]["fields"]


def test_it_exports_yaml_that_apply_reads(api: Api) -> None:
    api.create_job(tags=["x"])
    resp = api.get("/jobs?format=yaml")
    assert resp.status_code == 200 and resp.content_type.startswith("application/yaml")
    doc = yaml.safe_load(resp.get_data(as_text=True))
    assert doc["jobs"][0]["name"] == "report" and "id" not in doc["jobs"][0]


def test_it_lists_next_runs_like_the_scheduler(api: Api) -> None:
    job = api.create_job(schedule="30 2 * * *", timezone="America/New_York")
    resp = api.get(f"/jobs/{job['id']}/next-runs?count=3&from=2026-03-07T00:00:00Z")
    body = resp.get_json()
    # It should follow cronie's DST rule: the skipped 02:30 on 2026-03-08 runs at 03:00 EDT.
    assert body["nextRuns"] == [
        "2026-03-07T07:30:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:30:00Z",
    ]
    manual = api.create_job(name="manual", schedule=None)
    assert api.get(f"/jobs/{manual['id']}/next-runs").get_json()["nextRuns"] == []
    assert api.get(f"/jobs/{job['id']}/next-runs?count=0").status_code == 400


def test_it_lists_each_job_as_it_reads_alone_even_after_an_update_at_the_same_instant(
    api: Api,
) -> None:
    retry = {"type": "retry", "trigger": "on_failure", "config": {"maxRetries": 3}}
    job = api.create_job(
        tags=["b", "a"], env={"A": "1"}, constraints={"maxConcurrentRuns": 1}, actions=[retry]
    )
    assert api.get("/jobs").get_json()["items"] == [api.get(f"/jobs/{job['id']}").get_json()]
    # It should never serve the cached JSON of an older version: the clock has not moved, so
    # the job's updatedAt is unchanged, but its tags, actions and fields are not.
    api.put(f"/jobs/{job['id']}", json={"tags": ["c"], "actions": [], "description": "new"})
    listed = api.get("/jobs").get_json()["items"]
    assert listed == [api.get(f"/jobs/{job['id']}").get_json()]
    assert listed[0]["tags"] == ["c"] and listed[0]["actions"] == []
