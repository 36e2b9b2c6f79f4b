"""The job page's live parts (status, tiles, slot strip: 204 while unchanged) and its
charts bucketed by day in a zone far from UTC, on all three databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from itinerary import jobpage
from itinerary.models import JobRun
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.web_fakes import Browser


def _poll_url(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}" hx-get="([^"]+)"', html)
    assert found, element_id
    return found.group(1).replace("&amp;", "&")


def test_it_answers_each_live_part_204_until_its_content_changes(api: Api) -> None:
    job = api.create_job(name="live")
    t = api.clock.now() - timedelta(minutes=2)
    run = api.add_run(job["id"], t, status="running", started_at=t)
    browser = Browser(api)
    page = browser.text(f"/jobs/{job['id']}")
    urls = {i: _poll_url(page, i) for i in ("job-status", "job-tiles", "job-strip")}
    assert all(browser.get(u).status_code == 204 for u in urls.values())
    done = {"status": "succeeded", "completed_at": t + timedelta(seconds=30), "updated_at": t}
    update = JobRun.update(done).where(JobRun.run_id == run)
    api.database.write(lambda: api.database.writer.execute(update))
    api.clock.advance(11)  # past the figures' and the last run's caches
    status = browser.get(urls["job-status"])
    assert status.status_code == 200 and 'data-job-status="healthy"' in status.text
    assert "<title>live – Itinerary</title>" in status.text and 'hx-swap-oob="true"' in status.text
    tiles = browser.get(urls["job-tiles"])
    assert tiles.status_code == 200 and 'data-tile="duration">30 s / 30 s<' in tiles.text
    strip = browser.get(urls["job-strip"])
    assert strip.status_code == 200 and 'data-state="succeeded"' in strip.text
    assert browser.get(_poll_url(status.text, "job-status")).status_code == 204
    assert browser.get(f"/jobs/{job['id']}/_status?tab=nope").status_code == 400


def test_it_stops_nothing_but_keeps_the_poll_on_the_runs_and_events_tabs(api: Api) -> None:
    job = api.create_job(name="tabs")
    browser = Browser(api)
    for tab in ("runs", "events"):
        url = _poll_url(browser.text(f"/jobs/{job['id']}/{tab}"), "job-status")
        assert f"tab={tab}" in url and browser.get(url).status_code == 204


def test_it_buckets_days_by_the_zone_it_is_given(api: Api) -> None:
    job = api.create_job(name="zoned")
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    for hour in (9, 11):  # UTC+14: 23:00 on the 9th and 01:00 on the 10th, local
        t = datetime(2026, 3, 9, hour, 0, tzinfo=UTC)
        api.add_run(job["id"], t, started_at=t, completed_at=t + timedelta(seconds=1))
    kiritimati = api.database.read(jobpage.charts, job["id"], "7d", now, "Pacific/Kiritimati")
    b = kiritimati["buckets"]
    assert all((t + 14 * 3600) % 86400 == 0 for t in b["t"])  # local midnights
    assert [n for n in b["succeeded"] if n] == [1, 1]  # two local days
    utc = api.database.read(jobpage.charts, job["id"], "7d", now, "UTC")["buckets"]
    assert [n for n in utc["succeeded"] if n] == [2] and utc["t"][0] % 86400 == 0


def test_it_gives_a_day_of_23_hours_when_the_clocks_go_forward(api: Api) -> None:
    job = api.create_job(name="dst")
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # New York went to EDT on March 8
    t = datetime(2026, 3, 9, 3, 30, tzinfo=UTC)  # 23:30 EDT on March 8
    api.add_run(job["id"], t, started_at=t, completed_at=t + timedelta(seconds=1))
    b = api.database.read(jobpage.charts, job["id"], "7d", now, "America/New_York")["buckets"]
    lengths = {b["t"][i + 1] - b["t"][i] for i in range(len(b["t"]) - 1)}
    assert lengths == {86400, 82800}
    day = b["succeeded"].index(1)
    assert b["t"][day + 1] - b["t"][day] == 82800  # March 8: 23 hours


def test_it_serves_the_charts_in_a_display_zone_and_refuses_an_unknown_one(api: Api) -> None:
    job = api.create_job(name="charts")
    browser = Browser(api)
    ok = browser.get(f"/jobs/{job['id']}/charts.json?window=7d&zone=Asia/Kolkata")
    assert ok.status_code == 200 and ok.json["zone"] == "Asia/Kolkata"
    assert all((t + 19800) % 86400 == 0 for t in ok.json["buckets"]["t"])
    bad = browser.get(f"/jobs/{job['id']}/charts.json?zone=Mars/Olympus")
    assert bad.status_code == 400 and "zone" in bad.text


def test_it_prepends_new_events_marked_new_while_the_events_tab_shows_now(api: Api) -> None:
    job = api.create_job(name="feed")
    browser = Browser(api)
    url = _poll_url(browser.text(f"/jobs/{job['id']}/events"), "job-events")
    assert browser.get(url).status_code == 204
    api.clock.advance(5)
    assert api.post(f"/jobs/{job['id']}/pause", json={"reason": "disk"}).status_code < 300
    fresh = browser.get(url)
    assert fresh.status_code == 200 and fresh.text.count('class="badge warn">new<') == 1
    first = fresh.text.split("<li")[1]
    assert "new" in first and "paused" in first.lower()
    assert browser.get(_poll_url(fresh.text, "job-events")).status_code == 204
    older = browser.text(f"/jobs/{job['id']}/events?before=2999-01-01T00:00:00Z")
    assert 'id="job-events" data-version' in older  # an older page does not poll
