"""P4's status filter and live rows, and P6's Download YAML, in-process on every database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from itinerary import jobfiles, jobstore, tokens
from itinerary.web import joblist
from tests.api_fakes import Api, api_fixture, start_api  # noqa: F401 (the api fixture)
from tests.web_fakes import JOB_FORM, Browser


@pytest.fixture
def web(api: Api) -> Browser:
    return Browser(api)


def _job(web: Browser, name: str, state: str | None = None, **run: object) -> int:
    job_id = web.api.create_job(name=name)["id"]
    if state:
        web.api.add_run(job_id, web.api.clock.now() - timedelta(minutes=1), state, **run)
    return job_id


def _signed_in(api: Api, role: str, name: str = "") -> Browser:
    browser = Browser(api)
    token = tokens.create(api.database, name or role, role, api.clock.now())
    assert browser.open("POST", "/login", data={"token": token}).status_code == 303
    return browser


def _names(page: str) -> list[str]:
    return [part.split("<")[0] for part in page.split('/definition">')[1:]]


def test_it_filters_the_job_list_by_the_job_pages_status(web: Browser) -> None:
    _job(web, "a-healthy", "succeeded")
    _job(web, "b-failing", "failed")
    _job(web, "c-running", "running", started_at=web.api.clock.now())
    _job(web, "d-behind", "running", started_at=web.api.clock.now(), behind_schedule=True)
    _job(web, "e-new")
    _job(web, "h-skipped", "skipped")
    web.api.post(f"/jobs/{_job(web, 'f-paused', 'succeeded')}/pause", json={})
    web.api.delete(f"/jobs/{_job(web, 'g-archived')}")
    for status in joblist.STATUSES:
        page = web.text(f"/jobs?status={status}")
        assert [n.split("-")[1] for n in _names(page)] == [status], status


def test_it_pages_a_status_filter_with_a_cursor(web: Browser) -> None:
    for i in range(30):
        _job(web, f"job-{i:02d}", "failed" if i % 3 else "succeeded")
    first = web.text("/jobs?status=failing&limit=25")
    assert len(_names(first)) == 20 and "Next page" not in first
    assert _names(web.text("/jobs?status=healthy&limit=25")) == [
        f"job-{i:02d}" for i in range(0, 30, 3)
    ]
    assert "Next page" in web.text("/jobs?limit=25")


def test_it_stops_a_status_scan_at_its_cap_and_goes_on_from_there(
    web: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(joblist, "SCAN_CAP", 6)
    monkeypatch.setattr(joblist, "SCAN_CHUNK", 4)
    for i in range(8):
        _job(web, f"job-{i}", "succeeded")
    _job(web, "zz-broken", "failed")
    page = web.text("/jobs?status=failing")
    assert _names(page) == [] and "among the first 6 looked at" in page
    further = page.split('href="/jobs?')[1].split('"')[0].replace("&amp;", "&")
    assert _names(web.text("/jobs?" + further)) == ["zz-broken"]


def test_it_refuses_an_unknown_status_naming_the_field(web: Browser) -> None:
    resp = web.get("/jobs?status=enabledd")
    assert resp.status_code == 400 and "status" in resp.get_data(as_text=True)


def test_it_answers_204_while_the_rows_are_unchanged_and_the_new_state_after(
    web: Browser,
) -> None:
    job_id = _job(web, "etl", "succeeded")
    page = web.text("/jobs?status=healthy")
    rows_url = page.split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
    assert rows_url.startswith("/jobs/_rows?status=healthy&limit=50&v=")
    assert web.get(rows_url).status_code == 204
    web.api.add_run(job_id, web.api.clock.now(), "failed")
    web.api.clock.advance(6)  # past the list cache's 5 s
    assert web.get(rows_url).status_code == 200
    assert "etl" not in web.text(rows_url) and "etl" in web.text("/jobs/_rows?status=failing")


def test_it_downloads_a_jobs_yaml_exactly_as_export_writes_it(web: Browser) -> None:
    job_id = web.api.create_job(name="backup", env={"MODE": "full"})["id"]
    resp = web.get(f"/jobs/{job_id}/definition.yaml")
    assert resp.headers["Content-Type"] == "text/yaml; charset=utf-8"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="backup.yaml"'
    exported = jobfiles.export_yaml(
        web.api.database.read(jobstore.load_jobs)
    )  # what `export` writes
    assert resp.get_data(as_text=True) == exported
    assert yaml.safe_load(exported)["jobs"][0]["env"] == {"MODE": "full"}
    assert f'href="/jobs/{job_id}/definition.yaml"' in web.text(f"/jobs/{job_id}/definition")


def test_it_exports_the_jobs_the_list_filters_select(web: Browser) -> None:
    web.api.create_job(name="etl", tags=["nightly"])
    _job(web, "report", "failed")
    page = web.text("/jobs?tags=nightly")
    assert 'href="/jobs/export.yaml?tags=nightly"' in page
    by_tag = yaml.safe_load(web.text("/jobs/export.yaml?tags=nightly"))["jobs"]
    by_status = yaml.safe_load(web.text("/jobs/export.yaml?status=failing"))["jobs"]
    everything = yaml.safe_load(web.text("/jobs/export.yaml"))["jobs"]
    assert [j["name"] for j in by_tag] == ["etl"] and [j["name"] for j in by_status] == ["report"]
    assert sorted(j["name"] for j in everything) == ["etl", "report"]


def test_it_lets_a_viewer_download_a_jobs_yaml(sqlite_database, clock, queues) -> None:  # type: ignore[no-untyped-def]
    api = start_api(sqlite_database, clock, queues, host="0.0.0.0", allowed_hosts="*")
    admin, viewer = _signed_in(api, "admin"), _signed_in(api, "viewer")
    assert admin.post("/jobs", JOB_FORM).status_code == 303
    job_id = api.database.read(jobstore.get_job_by_name, "backup").id
    assert viewer.get(f"/jobs/{job_id}/definition.yaml").status_code == 200
    assert Browser(api).get(f"/jobs/{job_id}/definition.yaml").status_code in (302, 303)
    api.close()


def test_it_keeps_the_list_5_s_and_reads_the_runs_again_after(web: Browser) -> None:
    job_id = _job(web, "etl", "succeeded")
    assert "js-healthy" in web.text("/jobs")
    web.api.add_run(job_id, web.api.clock.now(), "failed")
    web.api.clock.advance(4)
    assert "js-healthy" in web.text("/jobs")  # the cached page
    web.api.clock.advance(2)
    assert "js-failing" in web.text("/jobs")


def test_it_shows_a_paused_job_at_once_though_the_list_is_cached(web: Browser) -> None:
    job_id = _job(web, "etl", "succeeded")
    assert ">Pause</button>" in web.text("/jobs")
    assert web.post(f"/jobs/{job_id}/pause", {"back": "/jobs"}).status_code == 303
    page = web.text("/jobs")
    assert ">Resume</button>" in page and "js-paused" in page


def test_it_gives_each_visitor_its_own_csrf_token_in_the_cached_rows(api: Api) -> None:
    _job(Browser(api), "etl")
    first, second = _signed_in(api, "operator", "ann"), _signed_in(api, "operator", "bob")
    pages = [first.text("/jobs"), second.text("/jobs")]
    for browser, page in zip((first, second), pages, strict=True):
        assert f'name="_csrf" value="{browser.csrf}"' in page and joblist.CSRF_MARK not in page
    assert first.csrf != second.csrf
