"""The job page in a real Chromium against a real Itinerary: its header, tiles and slot
strip follow a run to its end without a reload, the charts are drawn in the display zone
(the tab's Europe/Paris, not the job's UTC), and the duration trend's log scale is a
toggle that stays set; a failed run is drawn as ×. Screenshots in both themes and
narrow (tests/browser.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser import Server, Tab
from tests.test_web_browser_history import _job, _run, _wait_state

pytestmark = pytest.mark.timeout(240)


def test_it_follows_a_run_to_its_end_without_a_reload(admin: Tab, server: Server) -> None:
    job_id = _job(server, f"e2e-live-{admin.theme}")
    run = _run(server, job_id, 2)
    _wait_state(server, run, "running")
    admin.go(f"/jobs/{job_id}")
    assert admin.page.get_attribute("[data-job-status]", "data-job-status") == "running"
    admin.page.evaluate("window.__same = document.querySelector('.charts')")  # no reload
    _wait_state(server, run, "succeeded")
    admin.page.wait_for_selector("[data-job-status=healthy]", timeout=30000)  # 10 s polls
    admin.page.wait_for_selector("[data-tile=successRate]:text('100.0 %')", timeout=30000)
    admin.page.wait_for_selector(".strip .slot[data-state=succeeded]", timeout=30000)
    assert admin.page.evaluate("window.__same === document.querySelector('.charts')")
    assert admin.page.title().startswith(f"e2e-live-{admin.theme}")


def _seed_long_and_short(server: Server, job_id: int) -> None:
    """Runs of 2 s to 2 h over the last day, written straight into the server's SQLite."""
    path = server.db.removeprefix("sqlite:///")
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = []
    for i, seconds in enumerate([2, 5, 30, 90, 600, 1800, 3600, 7200] * 2):
        slot = now - timedelta(hours=22 - i)
        end = slot + timedelta(seconds=seconds)
        state = "failed" if i == 3 else "succeeded"
        rows.append((job_id, str(slot), f"rlog{job_id}x{i:04d}", state, str(slot), str(end)))
    with sqlite3.connect(path, timeout=10) as conn:
        conn.executemany(
            "INSERT INTO job_run (job_id, scheduled_at, run_id, trigger, attempt, status, "
            "started_at, completed_at, behind_schedule, created_at, updated_at) "
            "VALUES (?, ?, ?, 'schedule', 1, ?, ?, ?, 0, ?, ?)",
            [(*r[:5], r[5], r[1], r[1]) for r in rows],
        )


def test_it_draws_the_charts_in_the_display_zone_with_a_log_scale_toggle(
    admin: Tab, server: Server
) -> None:
    job_id = _job(server, f"e2e-log-{admin.theme}")
    _seed_long_and_short(server, job_id)
    admin.go(f"/jobs/{job_id}?window=7d")
    charts = admin.page.locator(".charts[data-zone='Europe/Paris']")
    charts.wait_for()
    assert admin.page.inner_text("[data-chart-zone]") == "Europe/Paris"
    assert charts.get_attribute("data-log") == "0"
    assert charts.get_attribute("data-failed-marks") == "1"  # the failed run as ×
    admin.page.check("#trend-log")
    admin.page.wait_for_selector(".charts[data-log='1']")
    admin.audit("job-trend-log")
    admin.go(f"/jobs/{job_id}?window=7d")  # the choice is kept
    admin.page.wait_for_selector(".charts[data-log='1'][data-zone='Europe/Paris']")
    assert admin.page.is_checked("#trend-log")
    admin.page.uncheck("#trend-log")
    admin.page.wait_for_selector(".charts[data-log='0']")
    admin.audit("job-overview-live")
