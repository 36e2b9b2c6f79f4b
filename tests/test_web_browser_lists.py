"""In a real Chromium (tests/browser.py): a manual run's env and resources overrides on its
page, secrets masked, applied to the workload; the job list's rows update without a reload."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

from tests.browser import Server, Tab

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def _api(server: Server, method: str, path: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {server.tokens['admin']}"}
    resp = requests.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=10, **kw)
    assert resp.status_code < 300, resp.text
    return resp.json()


def _job(server: Server, name: str, command: str) -> int:
    body = {"name": name, "commands": [["sh", "-c", command]]}
    body["manualRunModifiableFields"] = ["args", "resources", "env"]
    return _api(server, "POST", "/jobs", json=body)["id"]


def test_it_shows_a_runs_overrides_with_secrets_masked(admin: Tab, server: Server) -> None:
    job_id = _job(server, f"e2e-env-{admin.theme}", 'echo "greeting=$GREETING"')
    admin.go(f"/jobs/{job_id}/run")
    admin.page.fill("#r-env", "GREETING=hi\nAPI_TOKEN=s3cr3t-value")
    admin.page.fill("#r-res-limits-cpu", "500m")
    admin.page.click("text=Start run")
    admin.page.wait_for_url(re.compile(r".*/runs/r[a-z0-9]{15}.*"))
    admin.page.wait_for_selector("#run-logs >> text=greeting=hi", timeout=30000)
    status = admin.page.inner_text("#run-status")
    assert "GREETING=hi" in status and "API_TOKEN=••••••" in status and "cpu=500m" in status
    assert "s3cr3t-value" not in admin.page.content()
    admin.audit("run-overrides")


def test_it_updates_the_job_lists_rows_without_a_reload(admin: Tab, server: Server) -> None:
    name = f"e2e-live-{admin.theme}"
    job_id = _job(server, name, "true")
    admin.go(f"/jobs?name={name}")
    row = admin.page.locator(f'tr[data-job="{job_id}"]')
    assert row.locator(".jstatus").inner_text() == "New"
    admin.page.evaluate("window.notReloaded = true")
    run_id = _api(server, "POST", f"/runs/{job_id}", json={})["runId"]
    deadline = time.monotonic() + 30
    while _api(server, "GET", f"/runs/{run_id}")["state"] != "succeeded":
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)
    time.sleep(5.5)  # the list's latest-run cache (5 s)
    # Coming back to the tab polls at once (instead of waiting out the 15 s period).
    admin.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    admin.page.wait_for_selector(f'tr[data-job="{job_id}"] >> text=Healthy', timeout=10000)
    assert admin.page.evaluate("window.notReloaded") is True
    assert row.locator(f'a[href="/runs/{run_id}"]').count() == 1
    admin.go("/jobs?status=healthy")
    admin.audit("jobs-status-filter")


def test_it_downloads_a_jobs_yaml_from_its_page(admin: Tab, server: Server) -> None:
    name = f"e2e-yaml-{admin.theme}"
    job_id = _job(server, name, "true")
    admin.go(f"/jobs/{job_id}/definition")
    with admin.page.expect_download() as got:
        admin.page.click("text=Download YAML")
    download = got.value
    assert download.suggested_filename == f"{name}.yaml"
    text = open(download.path()).read()
    assert text.startswith(f"jobs:\n- name: {name}\n")
    assert text.strip() == admin.page.inner_text("#job-yaml").strip()  # the page's YAML
    admin.audit("job-definition-download")
