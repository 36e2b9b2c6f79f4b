"""A manual run's resources and env overrides: stored with its claim, returned by
GET /api/v1/runs/{id} and shown on the run page, env values with secret names masked."""

from __future__ import annotations

import pytest

from tests.api_fakes import Api, api_fixture  # noqa: F401 (the api fixture)
from tests.web_fakes import Browser

ENV_FORM = "GREETING=hi\nAPI_TOKEN=s3cr3t-value"


@pytest.fixture
def web(api: Api) -> Browser:
    return Browser(api)


def _runnable(web: Browser) -> dict:
    return web.api.create_job(name="etl", manualRunModifiableFields=["args", "resources", "env"])


def test_it_shows_a_manual_runs_overrides_on_its_page_with_secrets_masked(web: Browser) -> None:
    job = _runnable(web)
    form = {"when": "now", "env": ENV_FORM, "resources.limits.cpu": "2"}
    resp = web.post(f"/jobs/{job['id']}/run", form)
    run_id = resp.headers["Location"].split("/runs/")[1].split("?")[0]
    page = web.text(f"/runs/{run_id}")
    assert "GREETING=hi" in page and "API_TOKEN=••••••" in page
    assert "cpu=2" in page and "overridden for this run" in page
    assert "s3cr3t-value" not in page


def test_it_returns_a_runs_overrides_from_the_api_with_secrets_masked(web: Browser) -> None:
    job = _runnable(web)
    body = {"env": {"GREETING": "hi", "DB_PASSWORD": "pw"}, "resources": {"limits": {"cpu": "1"}}}
    run_id = web.api.post(f"/runs/{job['id']}", json=body).get_json()["runId"]
    run = web.api.get(f"/runs/{run_id}").get_json()
    assert run["overrides"] == {
        "env": {"GREETING": "hi", "DB_PASSWORD": "••••••"},
        "resources": {"limits": {"cpu": "1"}},
    }


def test_it_shows_no_overrides_for_a_scheduled_run(web: Browser) -> None:
    job = _runnable(web)
    run_id = web.api.add_run(job["id"], web.api.clock.now(), "succeeded")
    assert web.api.get(f"/runs/{run_id}").get_json()["overrides"] == {}
    page = web.text(f"/runs/{run_id}")
    assert '<dt>Env overrides</dt><dd class="overrides">none</dd>' in page
    assert '<dt>Resources</dt><dd class="overrides">the job\'s</dd>' in page
