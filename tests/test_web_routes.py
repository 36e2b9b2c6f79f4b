"""The web UI's pages and partials in-process: negotiation, roles, CSRF, forms, escaping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import unquote

import pytest

from itinerary import jobstore, tokens
from itinerary.clock import FakeClock
from itinerary.db import Database, bind
from itinerary.history import Anomaly
from itinerary.messages import Queues
from itinerary.web.sessions import UiSession
from tests.api_fakes import Api, api_fixture, start_api  # noqa: F401 (the api fixture)
from tests.dbfaults import Outage
from tests.web_fakes import JOB_FORM, Browser, form_fields

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def web(api: Api) -> Browser:
    return Browser(api)


@pytest.fixture
def secured(sqlite_database: Database, clock: FakeClock, queues: Queues) -> Iterator[Api]:
    """Listening off loopback: the UI needs a sign-in."""
    harness = start_api(sqlite_database, clock, queues, host="0.0.0.0", allowed_hosts="*")
    yield harness
    harness.close()


def _sign_in(api: Api, role: str) -> Browser:
    browser = Browser(api)
    token = tokens.create(api.database, f"{role}-user", role, api.clock.now())
    resp = browser.open("POST", "/login", data={"token": token, "next": "/jobs"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/jobs")
    return browser


def test_it_sends_browsers_to_the_running_page_and_keeps_json_for_clients(web: Browser) -> None:
    assert web.get("/").headers["Location"].endswith("/running")
    resp = web.open("GET", "/", headers={"Accept": "application/json"})
    assert resp.get_json()["links"]["api"] == "/api/v1"


def test_it_answers_errors_in_html_for_browsers_and_json_otherwise(web: Browser) -> None:
    page = web.get("/no/such/page")
    assert page.status_code == 404 and "<h1>404" in page.get_data(as_text=True)
    data = web.open("GET", "/no/such/page", headers={"Accept": "application/json"})
    assert data.status_code == 404 and data.get_json()["error"]["code"] == "not_found"
    assert web.get("/runs/rnotarealrun00000").status_code == 404


def test_it_sends_strict_security_headers_on_every_page(web: Browser) -> None:
    resp = web.get("/running")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"


def test_it_shows_a_card_per_active_run_and_204_when_unchanged(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    run_id = web.api.add_run(
        job["id"], web.api.clock.now(), "running", started_at=web.api.clock.now()
    )
    page = web.text("/running")
    assert f'data-run="{run_id}"' in page and "Cancel" in page
    version = page.split("/running/_cards?v=")[1].split('"')[0]
    assert web.get(f"/running/_cards?v={version}").status_code == 204
    web.api.add_run(job["id"], web.api.clock.now() - timedelta(minutes=5), "waiting")
    assert web.get(f"/running/_cards?v={version}").status_code == 200


def test_it_creates_a_job_from_the_form(web: Browser) -> None:
    resp = web.post("/jobs", JOB_FORM)
    assert resp.status_code == 303
    job = web.api.database.read(jobstore.get_job_by_name, "backup")
    assert job.timezone == "Europe/Paris" and set(job.tags) == {"nightly", "db"}
    assert job.commands == (("sh", "-c", "echo backing up"),)
    assert job.constraints == {"maxConcurrentRuns": 1, "maxAllowedRunTime": "1h"}


def test_it_rerenders_a_bad_form_with_422_and_saves_nothing(web: Browser) -> None:
    bad = {**JOB_FORM, "name": "Bad Name", "schedule": "61 * * * *", "podSpec": "{containers: ["}
    resp = web.post("/jobs", bad)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="err-name"' in page and 'id="err-podSpec"' in page and 'id="err-schedule"' in page
    assert 'value="61 * * * *"' in page  # what the user typed is kept
    assert web.api.database.read(jobstore.load_jobs) == []


def test_it_answers_409_when_the_job_changed_since_the_form_was_opened(web: Browser) -> None:
    web.post("/jobs", JOB_FORM)
    job = web.api.database.read(jobstore.get_job_by_name, "backup")
    form = web.text(f"/jobs/{job.id}/edit")
    opened = form.split('name="updatedAt" value="')[1].split('"')[0]
    web.api.clock.advance(5)
    web.api.put(f"/jobs/{job.id}", json={"description": "changed by the API"})
    resp = web.post(f"/jobs/{job.id}", {**JOB_FORM, "updatedAt": opened, "description": "mine"})
    assert resp.status_code == 409 and "Changed by someone else" in resp.get_data(as_text=True)
    stored = web.api.database.read(jobstore.get_job_by_name, "backup")
    assert stored.description == "changed by the API"


def test_it_escapes_markup_in_a_description_a_tag_and_a_run_reason(web: Browser) -> None:
    job = web.api.create_job(name="evil", description=XSS, tags=[XSS])
    run_id = web.api.add_run(job["id"], web.api.clock.now(), "waiting", reason=XSS)
    for path in (f"/jobs/{job['id']}/definition", "/jobs", f"/runs/{run_id}", "/running"):
        page = web.text(path)
        assert XSS not in page, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in page, path


def test_it_refuses_a_write_without_csrf_or_from_another_origin(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    assert web.post(f"/jobs/{job['id']}/pause", {"_csrf": ""}).status_code == 403
    assert web.post(f"/jobs/{job['id']}/pause", {"_csrf": "forged"}).status_code == 403
    foreign = {"Origin": "http://evil.example"}
    assert web.post(f"/jobs/{job['id']}/pause", headers=foreign).status_code == 403
    assert web.api.get(f"/jobs/{job['id']}").get_json()["enabled"] is True
    assert web.post(f"/jobs/{job['id']}/pause", {"reason": "maintenance"}).status_code == 303
    assert web.api.get(f"/jobs/{job['id']}").get_json()["pausedReason"] == "maintenance"


def test_it_starts_a_manual_run_and_sends_the_browser_to_its_page(web: Browser) -> None:
    job = web.api.create_job(name="etl", manualRunModifiableFields=["args"])
    resp = web.post(f"/jobs/{job['id']}/run", {"args": "--full\n--fast", "when": "now"})
    assert resp.status_code == 303
    run_id = resp.headers["Location"].split("/runs/")[1].split("?")[0]
    run = web.api.get(f"/runs/{run_id}").get_json()
    assert run["args"] == ["--full", "--fast"] and run["trigger"] == "manual"
    assert "--full --fast" in web.text(f"/runs/{run_id}")


def test_it_refuses_a_manual_run_of_a_job_that_does_not_allow_it(web: Browser) -> None:
    job = web.api.create_job(name="etl", manuallyRunnable=False)
    assert "not manually runnable" in web.text(f"/jobs/{job['id']}/run")
    assert web.post(f"/jobs/{job['id']}/run", {"when": "now"}).status_code == 403
    assert not any(m for m in web.api.scheduler.seen if type(m).__name__ == "RunNow")


def test_it_cancels_an_active_run_from_its_page(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    resp = web.post(f"/jobs/{job['id']}/run", {"when": "now"})
    run_id = resp.headers["Location"].split("/runs/")[1].split("?")[0]
    assert web.post(f"/runs/{run_id}/cancel").status_code == 303
    assert web.api.get(f"/runs/{run_id}").get_json()["state"] == "killed"
    page = web.text(f"/runs/{run_id}")
    assert "Killed" in page and f"/runs/{run_id}/cancel" not in page


def test_it_shows_the_run_output_and_why_there_is_none(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    with_log = web.api.add_run(
        job["id"], web.api.clock.now(), "succeeded", handle={"log": "hello\nworld"}
    )
    assert "hello\nworld" in web.text(f"/runs/{with_log}")
    gone = web.api.add_run(
        job["id"], web.api.clock.now() - timedelta(minutes=1), "succeeded", handle={"gone": True}
    )
    assert "Logs are not available: the pod is gone" in web.text(f"/runs/{gone}")
    assert "No constraint violations." in web.text(f"/runs/{gone}")


def test_it_searches_and_pages_the_job_list(web: Browser) -> None:
    for i in range(30):
        web.api.create_job(name=f"job-{i:02d}", tags=["even" if i % 2 == 0 else "odd"])
    page = web.text("/jobs?limit=25")
    assert "job-24" in page and "job-25" not in page
    cursor_link = page.split('href="/jobs?')[-1].split('"')[0].replace("&amp;", "&")
    assert "job-29" in web.text("/jobs?" + cursor_link)
    found = web.text("/jobs?name=job-1*&tags=odd")
    assert "job-11" in found and "job-12" not in found and "job-21" not in found


def test_it_previews_a_cron_expression_as_you_type(web: Browser) -> None:
    web.get("/jobs/new")
    ok = web.post("/schedule/_preview", {"schedule": "*/5 * * * *", "timezone": "UTC"})
    assert "Every fifth minute" in ok.get_data(as_text=True) and "<time" in ok.get_data(
        as_text=True
    )
    bad = web.post("/schedule/_preview", {"schedule": "nope", "timezone": "UTC"})
    assert "Invalid cron expression" in bad.get_data(as_text=True)


def test_it_sends_an_anonymous_visitor_to_sign_in_off_loopback(secured: Api) -> None:
    browser = Browser(secured)
    resp = browser.get("/jobs?name=x")
    assert resp.status_code == 303 and resp.headers["Location"] == "/login?next=/jobs%3Fname%3Dx"
    assert browser.get("/running", headers={"HX-Request": "true"}).headers["HX-Redirect"]
    assert browser.open("POST", "/login", data={"token": "itn_wrong"}).status_code == 401


def test_it_shows_a_viewer_no_controls_and_refuses_their_forged_post(secured: Api) -> None:
    admin = _sign_in(secured, "admin")
    assert admin.post("/jobs", JOB_FORM).status_code == 303
    job = secured.database.read(jobstore.get_job_by_name, "backup")
    viewer = _sign_in(secured, "viewer")
    page = viewer.text("/jobs")
    assert "Read-only (viewer)" in page and "Run now" not in page and "/edit" not in page
    assert viewer.post(f"/jobs/{job.id}/run", {"when": "now"}).status_code == 403
    assert viewer.post(f"/jobs/{job.id}/pause").status_code == 403
    assert viewer.get("/jobs/new").status_code == 403


def test_it_ends_a_session_when_its_token_is_revoked_or_it_expires(secured: Api) -> None:
    browser = _sign_in(secured, "operator")
    assert browser.get("/running").status_code == 200
    tokens.revoke(secured.database, "operator-user", secured.clock.now())
    assert browser.get("/running").status_code == 303
    other = _sign_in(secured, "viewer")
    secured.clock.advance(secured.ctx.config.ui_session_ttl + 1)
    assert other.get("/running").status_code == 303


def test_it_never_lets_a_session_cookie_authenticate_the_api(secured: Api) -> None:
    browser = _sign_in(secured, "admin")
    resp = browser.open("GET", "/api/v1/jobs", headers={"Accept": "application/json"})
    assert resp.status_code == 401


def test_it_rate_limits_failed_sign_ins_per_client(secured: Api) -> None:
    browser = Browser(secured)
    for _ in range(5):
        assert browser.open("POST", "/login", data={"token": "itn_wrong"}).status_code == 401
    token = tokens.create(secured.database, "late", "viewer", secured.clock.now())
    assert browser.open("POST", "/login", data={"token": token}).status_code == 429
    secured.clock.advance(61)
    assert browser.open("POST", "/login", data={"token": token}).status_code == 303


def test_it_sets_the_session_cookie_httponly_and_samesite_lax(secured: Api) -> None:
    browser = Browser(secured)
    token = tokens.create(secured.database, "c", "viewer", secured.clock.now())
    resp = browser.open("POST", "/login", data={"token": token})
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("itinerary_session=") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Max-Age=43200" in cookie
    assert token not in resp.get_data(as_text=True)


def test_it_requires_a_sign_in_on_loopback_with_require_auth(
    sqlite_database: Database, clock: FakeClock, queues: Queues
) -> None:
    harness = start_api(sqlite_database, clock, queues, require_auth=True)
    try:
        assert Browser(harness).get("/running").status_code == 303
        assert harness.get("/jobs").status_code == 401
    finally:
        harness.close()


def test_it_shows_a_flash_message_once_and_never_one_from_the_url(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    resp = web.post(f"/jobs/{job['id']}/pause")
    location = resp.headers["Location"]
    assert "Job etl paused." in web.text(location)
    assert "Job etl paused." not in web.text(location)
    assert "Call 555" not in web.text("/running?flash=Call+555")


def test_it_answers_a_503_page_when_the_database_is_down(
    database: Database, clock: FakeClock, queues: Queues
) -> None:
    if database.driver == "sqlite":
        pytest.skip("reads from SQLite do not fail while another connection holds a lock")
    outage = Outage(database)
    bind(outage.database)
    harness = start_api(outage.database, clock, queues)
    try:
        outage.cut()
        page = Browser(harness).get("/jobs")
        assert page.status_code == 503
        assert "The database is unavailable" in page.get_data(as_text=True)
        assert harness.get("/jobs").get_json()["error"]["code"] == "unavailable"
    finally:
        outage.restore()
        harness.close()
        bind(database)
        outage.close()


def test_it_lists_the_next_hours_runs_as_soon_as_a_job_is_created(web: Browser) -> None:
    assert "No scheduled runs in the next hour." in web.text("/running")
    web.api.create_job(name="every-five", schedule="*/5 * * * *")
    page = web.text("/running/_upcoming")
    assert page.count("every-five") == 12 and "more in the next hour" not in page


RICH = {
    "name": "rich",
    "description": "line one\nline two",
    "schedule": "30 2 * * 1-5",
    "timezone": "Europe/Berlin",
    "commands": [["python", "-m", "report", "--title", "a b"]],
    "args": ["--region", "eu"],
    "env": {"LOG_LEVEL": "info"},
    "envSecret": ["report-credentials"],
    "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi", "nvidia.com/gpu": 1}},
    "tags": ["reports", "team:finance"],
    "constraints": {
        "maxConcurrentRuns": 2,
        "catchUp": True,
        "maxAllowedRunTime": "1h",
        "requirePreviousSuccess": {"job": "etl", "within": "24h"},
    },
    "actions": [{"type": "retry", "trigger": "on_failure", "config": {"maxRetries": 3}}],
    "manualRunModifiableFields": ["args", "env"],
}


def test_it_saves_an_unchanged_edit_form_as_the_same_job(web: Browser) -> None:
    job = web.api.create_job(**RICH)
    fields = form_fields(web.text(f"/jobs/{job['id']}/edit"), f"/jobs/{job['id']}")
    web.api.clock.advance(1)
    assert web.post(f"/jobs/{job['id']}", fields).status_code == 303
    after = web.api.get(f"/jobs/{job['id']}").get_json()
    ignore = ("updatedAt", "createdAt")
    assert {k: v for k, v in after.items() if k not in ignore} == {
        k: v for k, v in job.items() if k not in ignore
    }


def test_it_archives_a_job_only_when_its_name_is_typed(web: Browser) -> None:
    job = web.api.create_job(name="old")
    assert web.post(f"/jobs/{job['id']}/archive", {"confirm_name": "olx"}).status_code == 400
    assert web.api.get(f"/jobs/{job['id']}").get_json()["archivedAt"] is None
    assert web.post(f"/jobs/{job['id']}/archive", {"confirm_name": "old"}).status_code == 303
    assert web.api.get(f"/jobs/{job['id']}").get_json()["archivedAt"] is not None
    assert "Archived" in web.text(f"/jobs/{job['id']}/definition")


def test_it_estimates_progress_from_five_past_successes(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    now = web.api.clock.now()
    for i in range(1, 6):
        start = now - timedelta(hours=i)
        web.api.add_run(
            job["id"], start, started_at=start, completed_at=start + timedelta(seconds=100)
        )
    web.api.add_run(
        job["id"], now - timedelta(seconds=30), "running", started_at=now - timedelta(seconds=30)
    )
    page = web.text("/running")
    assert 'value="30"' in page and "≈ 1 m 10 s left of 1 m 40 s usually" in page


def test_it_shows_a_kickoff_cycle_beside_the_actions_field(web: Browser) -> None:
    web.api.create_job(
        name="a", actions=[{"type": "kickOffJob", "trigger": "on_success", "config": {"job": "b"}}]
    )
    cyclic = {
        **JOB_FORM,
        "name": "b",
        "actions.0.type": "kickOffJob",
        "actions.0.trigger": "on_success",
        "actions.0.config.job": "a",
    }
    resp = web.post("/jobs", cyclic)
    assert resp.status_code == 422 and 'id="err-actions"' in resp.get_data(as_text=True)
    assert web.api.database.read(jobstore.get_job_by_name, "b") is None


def test_it_shows_a_permanent_banner_with_insecure_no_auth(
    sqlite_database: Database, clock: FakeClock, queues: Queues
) -> None:
    harness = start_api(
        sqlite_database, clock, queues, host="0.0.0.0", allowed_hosts="*", insecure_no_auth=True
    )
    try:
        for path in ("/running", "/jobs", "/jobs/new"):
            assert "Authentication is OFF" in Browser(harness).text(path)
    finally:
        harness.close()


def test_it_refuses_an_htmx_request_with_a_403_message_for_a_toast(secured: Api) -> None:
    viewer = _sign_in(secured, "viewer")
    resp = viewer.post(
        "/schedule/_preview", {"schedule": "* * * * *"}, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 200  # the preview is for viewers too
    resp = viewer.post("/jobs", JOB_FORM, headers={"HX-Request": "true"})
    assert resp.status_code == 403 and "<html" not in resp.get_data(as_text=True)
    assert "admin" in unquote(resp.headers["X-Itinerary-Message"])


def test_it_ends_the_session_on_sign_out(secured: Api) -> None:
    browser = _sign_in(secured, "viewer")
    assert browser.post("/logout").headers["Location"] == "/login"
    assert browser.get("/running").status_code == 303
    assert secured.database.read(lambda: UiSession.select().count()) == 0


def test_it_explains_an_anomalous_run_on_its_page(web: Browser) -> None:
    job = web.api.create_job(name="etl")
    now = web.api.clock.now()
    run_id = web.api.add_run(job["id"], now, started_at=now, completed_at=now)
    row = {
        "id": 7,
        "job_id": job["id"],
        "run_id": run_id,
        "kind": "duration",
        "detected_at": now,
        "score": 9.5,
        "baseline": "{}",
        "explanation": f"took 14m12s {XSS}",
    }
    web.api.database.write(lambda: Anomaly.insert(**row).execute(web.api.database.writer))
    page = web.text(f"/runs/{run_id}")
    assert "Anomaly (duration):" in page and "took 14m12s &lt;img" in page
