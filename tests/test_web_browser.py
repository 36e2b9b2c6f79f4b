"""The web UI in a real Chromium against a real Itinerary process (see tests/browser.py).

One server for the module: an admin creates a job in the form, runs it, watches it
on the running page and its run page, cancels a long run; a viewer sees no
controls and is refused a forged post; axe passes and screenshots are taken on
every page, in light and dark.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser import (
    Server,
    Tab,
    open_tab,
    sign_in,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
SLEEP_JOB = "sh -c 'echo start $1; sleep $1; echo done' sh"


def _run_id(tab: Tab) -> str:
    return re.search(r"/runs/(r[a-z0-9]{15})", tab.page.url).group(1)


def _start(tab: Tab, job_id: str, args: str) -> str:
    tab.go(f"/jobs/{job_id}/run")
    tab.page.fill("#r-args", args)
    tab.page.click("text=Start run")
    tab.page.wait_for_url(re.compile(r".*/runs/r[a-z0-9]{15}.*"))
    return _run_id(tab)


def test_it_creates_a_job_in_the_form_with_a_live_preview_and_inline_errors(admin: Tab) -> None:
    name = f"e2e-sleep-{admin.theme}"
    admin.go("/jobs/new")
    admin.page.fill("#f-name", name)
    admin.page.fill("#f-schedule", "*/5 * * * *")
    admin.page.wait_for_selector("#cron-preview >> text=Every fifth minute")
    admin.page.fill("#f-commands", SLEEP_JOB)
    admin.page.check("#f-mod-args")
    admin.page.fill("#f-podSpec", "containers: [")
    admin.expect_status(422)
    admin.page.click("text=Create job")
    assert admin.page.locator("#err-podSpec").is_visible()
    admin.audit("job-form-errors")
    admin.page.fill("#f-podSpec", "")
    admin.page.click("text=Create job")
    admin.page.wait_for_url(re.compile(r".*/jobs/\d+/definition.*"))
    assert admin.page.locator("h1", has_text=name).is_visible()
    admin.audit("job-definition")


def test_it_runs_a_job_shows_its_card_and_its_output(admin: Tab) -> None:
    job_id = _job_id(admin, f"e2e-sleep-{admin.theme}")
    run_id = _start(admin, job_id, "8")
    admin.page.wait_for_selector("#run-status >> text=Running", timeout=30000)
    admin.go("/running")
    admin.page.wait_for_selector(f'.card[data-run="{run_id}"] >> text=Running', timeout=5000)
    admin.audit("running")
    admin.page.click(f'.card[data-run="{run_id}"] a.run-link')
    admin.page.wait_for_selector("#run-status >> text=Succeeded", timeout=30000)
    admin.page.wait_for_selector("#run-logs >> text=done", timeout=10000)
    assert "start 8" in admin.page.inner_text("#run-logs")
    admin.audit("run")


def test_it_cancels_a_long_run_through_the_dialog(admin: Tab) -> None:
    job_id = _job_id(admin, f"e2e-sleep-{admin.theme}")
    run_id = _start(admin, job_id, "120")
    admin.page.wait_for_selector("#run-status >> text=Running", timeout=30000)
    admin.page.click("#run-status button:has-text('Cancel')")
    admin.page.click("#confirm-ok")
    admin.page.wait_for_url(re.compile(rf".*/runs/{run_id}.*"))
    admin.page.wait_for_selector("#run-status >> text=Killed", timeout=30000)
    assert admin.page.locator("#run-status button:has-text('Cancel')").count() == 0


def test_it_passes_axe_on_the_list_and_run_form(admin: Tab) -> None:
    admin.go("/jobs")
    admin.audit("jobs")
    job_id = _job_id(admin, f"e2e-sleep-{admin.theme}")
    admin.go(f"/jobs/{job_id}/run")
    admin.audit("manual-run")
    admin.go(f"/jobs/{job_id}/edit")
    admin.audit("job-edit")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_it_shows_a_viewer_no_controls_and_refuses_a_forged_post(
    server: Server, chromium: Any, theme: str
) -> None:
    tab = open_tab(chromium, server.url, theme)
    tab.go("/login")
    tab.audit("login")
    sign_in(tab, server.tokens["viewer"])
    tab.go("/jobs")
    assert tab.page.locator("text=Read-only (viewer)").is_visible()
    assert (
        tab.page.locator("text=Run now").count() == 0
        and tab.page.locator("text=New job").count() == 0
    )
    job_id = _job_id(tab, "e2e-sleep-light")
    csrf = tab.page.get_attribute('meta[name="csrf-token"]', "content")
    tab.audit("jobs-viewer")
    forged = tab.page.request.post(
        f"{server.url}/jobs/{job_id}/run", form={"_csrf": csrf, "when": "now"}
    )
    assert forged.status == 403
    tab.check()


def test_it_shows_a_missing_page_as_an_accessible_404(admin: Tab) -> None:
    admin.expect_status(404)
    admin.go("/jobs/999999/definition")
    assert admin.page.locator("h1", has_text="404").is_visible()
    admin.audit("not-found")


def _job_id(tab: Tab, name: str) -> str:
    tab.go(f"/jobs?name={name}")
    href = tab.page.get_attribute(f"a:text-is('{name}')", "href")
    return re.search(r"/jobs/(\d+)", href).group(1)
