"""Header values of hooks and webhook actions are secrets: every reader sees them masked,
and a masked value sent back keeps the stored one (API, export, apply -f)."""

from __future__ import annotations

import json

from itinerary import jobfiles, jobstore
from itinerary.db import Database
from tests.api_fakes import JOB, Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.web_fakes import Browser

SECRET = "Bearer s3cr3t-token-abcd"
HOOKED = {
    "constraints": {"preRunHook": {"url": "https://gate.example/ok", "headers": {"X-T": SECRET}}},
    "actions": [
        {"type": "webhook", "trigger": "on_failure",
         "config": {"url": "https://hooks.example/x", "headers": {"Authorization": SECRET}}},
    ],
}  # fmt: skip


def stored_headers(database: Database) -> tuple[object, object]:
    (job,) = database.read(jobstore.load_jobs)
    return job.constraints["preRunHook"]["headers"], job.actions[0].config["headers"]


def test_it_shows_header_values_masked_wherever_the_api_shows_a_job(api: Api) -> None:
    job = api.create_job(**HOOKED)
    for shown in (job, api.get(f"/jobs/{job['id']}").get_json(), api.get("/jobs").get_json()):
        text = json.dumps(shown, ensure_ascii=False)
        assert SECRET not in text and "••••abcd" in text
    assert stored_headers(api.database) == ({"X-T": SECRET}, {"Authorization": SECRET})


def test_it_keeps_the_stored_value_when_a_masked_one_comes_back(api: Api) -> None:
    job = api.create_job(**HOOKED)
    shown = api.get(f"/jobs/{job['id']}").get_json()
    shown["description"] = "edited"
    assert api.put(f"/jobs/{job['id']}", json=shown).status_code == 200
    assert stored_headers(api.database) == ({"X-T": SECRET}, {"Authorization": SECRET})


def test_it_refuses_a_masked_value_it_does_not_hold(api: Api) -> None:
    body = json.loads(json.dumps(HOOKED).replace(SECRET, "••••abcd"))
    resp = api.post("/jobs", json={**api_job(), **body})
    assert resp.status_code == 400
    assert "constraints.preRunHook.headers.X-T" in resp.get_json()["error"]["fields"]


def test_it_exports_masked_and_applies_the_export_back_unchanged(api: Api) -> None:
    api.create_job(**HOOKED)
    exported = jobfiles.export_yaml(api.database.read(jobstore.load_jobs))
    assert SECRET not in exported
    live = api.database.read(jobstore.load_jobs)
    changes = jobfiles.plan(jobfiles.read_documents(exported, "x"), live, prune=False, source="x")
    assert [c.action for c in changes] == ["unchanged"]


def test_it_applies_a_file_with_a_new_secret_in_clear(api: Api) -> None:
    job = api.create_job(**HOOKED)
    text = json.dumps({"jobs": [{**api_job(), **json.loads(json.dumps(HOOKED).replace(
        SECRET, "Bearer rotated-9999"))}]})  # fmt: skip
    live = api.database.read(jobstore.load_jobs)
    changes = jobfiles.plan(jobfiles.read_documents(text, "x"), live, prune=False, source="x")
    jobfiles.apply_to_database(api.database, changes)
    assert [c.action for c in changes] == ["updated"] and job["id"] == changes[0].job.id
    assert stored_headers(api.database)[1] == {"Authorization": "Bearer rotated-9999"}


def api_job() -> dict[str, object]:
    return dict(JOB)


def test_it_shows_no_header_value_on_the_definition_page(api: Api) -> None:
    job = api.create_job(**HOOKED)
    page = Browser(api).text(f"/jobs/{job['id']}/definition")
    assert SECRET not in page and "••••abcd" in page and "hooks.example" in page
