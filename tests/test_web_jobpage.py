"""A job's history pages (overview, runs, events) on all three databases, seeded with
histories whose figures the tests compute independently."""

from __future__ import annotations

import json
import re
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from itinerary import jobpage
from itinerary.history import Anomaly
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.web_fakes import Browser

DURATIONS = [12, 30, 45, 60, 61, 90, 120, 300]  # seconds, succeeded runs
LATE = [0, 2, 4, 6, 8, 10, 12, 14]  # start lateness of those runs


def _seed(api: Api) -> dict[str, Any]:
    """Over the last 24 h: 8 successes, 2 failures, 1 killed, 1 missed, 1 skipped (busy)."""
    job = api.create_job(name="etl", constraints={"maxExpectedRunTime": "4m"})
    now = api.clock.now()
    ids: dict[str, Any] = {"job": job["id"], "ok": []}
    for i, (d, late) in enumerate(zip(DURATIONS, LATE, strict=True)):
        t = now - timedelta(hours=20 - i)
        s = t + timedelta(seconds=late)
        ids["ok"].append(
            api.add_run(job["id"], t, started_at=s, completed_at=s + timedelta(seconds=d))
        )
    for i, status in enumerate(("failed", "failed", "killed")):
        t = now - timedelta(hours=10 - i)
        api.add_run(
            job["id"], t, status=status, started_at=t, completed_at=t + timedelta(seconds=5)
        )
    api.add_run(job["id"], now - timedelta(hours=3), status="missed")
    ids["skipped"] = api.add_run(
        job["id"],
        now - timedelta(hours=2),
        status="skipped",
        reason="maxConcurrentRuns 1 reached, <img src=x onerror=alert(1)> still running",
    )
    api.add_run(job["id"], now - timedelta(days=3), started_at=now - timedelta(days=3))
    return ids


def _tiles(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-tile="(\w+)">([^<]*)<', html))


def test_it_shows_tiles_equal_to_figures_computed_here(api: Api) -> None:
    ids = _seed(api)
    html = Browser(api).text(f"/jobs/{ids['job']}?window=24h")
    tiles = _tiles(html)
    all_durations = sorted(DURATIONS + [5, 5, 5])
    assert tiles["runs"] == "13" and tiles["failed"] == "2" and tiles["killed"] == "1"
    assert tiles["missed"] == "1" and tiles["skipped"] == "1"
    assert tiles["successRate"] == f"{8 / 11 * 100:.1f} %"  # 8 of the 11 that ran to an end
    mean = statistics.fmean(all_durations)
    assert tiles["duration"] == f"{int(mean) // 60} m {int(mean) % 60} s / 45 s"
    p95 = statistics.quantiles(all_durations, n=20, method="inclusive")[-1]
    assert tiles["durationHigh"] == f"{int(p95) // 60} m {int(p95) % 60} s / 5 m 0 s"
    late_p95 = statistics.quantiles(LATE + [0, 0, 0], n=20, method="inclusive")[-1]
    assert tiles["lateness"] == f"{late_p95:.1f} s"
    seven = _tiles(Browser(api).text(f"/jobs/{ids['job']}?window=7d"))
    assert seven["runs"] == "14"


def test_it_buckets_slots_per_hour_and_draws_the_trend(api: Api) -> None:
    ids = _seed(api)
    now = api.clock.now()
    data = api.database.read(jobpage.charts, ids["job"], "24h", now)
    b = data["buckets"]
    assert b["hourly"] and len(b["t"]) == 25 and b["t"][-1] % 3600 == 0
    assert sum(b["succeeded"]) == 8 and sum(b["failed"]) == 2 and sum(b["skipped"]) == 1
    assert sum(b["missed"]) == 1 and sum(b["killed"]) == 1
    assert data["trend"]["duration"] == [float(d) for d in DURATIONS] + [5.0, 5.0, 5.0]
    assert data["trend"]["p50"][:3] == [12.0, 21.0, 30.0]  # rolling medians
    daily = api.database.read(jobpage.charts, ids["job"], "7d", now)["buckets"]
    assert not daily["hourly"] and sum(sum(daily[s]) for s in jobpage.STACKED) == 14


def test_it_rings_anomalies_with_their_explanation_in_safe_json(api: Api) -> None:
    ids = _seed(api)
    now = api.clock.now()
    api.database.write(
        lambda: Anomaly.insert(
            id=5,
            job_id=ids["job"],
            run_id=ids["ok"][-1],
            kind="duration",
            detected_at=now,
            score=9.0,
            explanation="took 5m; usual </script><b>60s</b>",
        ).execute(api.database.writer)
    )
    html = Browser(api).text(f"/jobs/{ids['job']}")
    embedded = re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1)
    assert "</" not in embedded and "<b>" not in embedded
    data = json.loads(embedded)
    assert data["trend"]["anomaly"][7] == "took 5m; usual </script><b>60s</b>"
    assert data["trend"]["anomaly"][:7] == [None] * 7


def test_it_shows_the_slot_strip_with_escaped_reasons_and_next_runs(api: Api) -> None:
    ids = _seed(api)
    html = Browser(api).text(f"/jobs/{ids['job']}")
    strip = html.split('class="strip"')[1].split("</ol>")[0]
    assert strip.count("<li>") == 14 and 'data-state="skipped"' in strip
    assert "maxConcurrentRuns 1 reached, &lt;img src=x onerror=alert(1)&gt; still running" in strip
    assert "<img src=x" not in html
    next_rows = html.split('id="next-h"')[1].split("</table>")[0]
    assert next_rows.count("<tr>") == 11  # header + 10 fire times


def test_it_filters_the_runs_tab_and_lists_the_events_tab(api: Api) -> None:
    ids = _seed(api)
    browser = Browser(api)
    failed = browser.text(f"/jobs/{ids['job']}/runs?state=failed")
    assert failed.split("<tbody>")[1].count('href="/runs/r') == 2
    late = browser.text(f"/jobs/{ids['job']}/runs?range=24h&state=succeeded")
    assert "late by 14 s" in late and late.split("<tbody>")[1].count('href="/runs/r') == 8
    assert browser.get(f"/jobs/{ids['job']}/runs?range=soon").status_code == 400
    events = browser.text(f"/jobs/{ids['job']}/events")
    assert "created by loopback" in events and "Healthy → Failing (failed)" in events
    assert browser.get("/jobs/424242").status_code == 404


def test_it_says_failing_in_the_title_and_the_favicon(api: Api) -> None:
    job = api.create_job(name="flaky")
    t = api.clock.now() - timedelta(minutes=5)
    api.add_run(job["id"], t, status="failed", started_at=t, completed_at=t)
    html = Browser(api).text(f"/jobs/{job['id']}")
    assert "<title>Failing · flaky – Itinerary</title>" in html and "failing.svg" in html
    api.add_run(job["id"], t + timedelta(minutes=1), started_at=t, completed_at=t)
    healthy = Browser(api).text(f"/jobs/{job['id']}")
    assert "<title>flaky – Itinerary</title>" in healthy and "failing.svg" not in healthy


def test_it_recomputes_the_figures_at_most_every_ten_seconds(api: Api) -> None:
    ids = _seed(api)
    browser = Browser(api)
    assert _tiles(browser.text(f"/jobs/{ids['job']}"))["runs"] == "13"
    t = api.clock.now() - timedelta(minutes=1)
    api.add_run(ids["job"], t, started_at=t, completed_at=t + timedelta(seconds=1))
    assert _tiles(browser.text(f"/jobs/{ids['job']}"))["runs"] == "13"  # cached
    api.clock.advance(11)
    assert _tiles(browser.text(f"/jobs/{ids['job']}"))["runs"] == "14"


def test_it_shows_tags_the_description_and_the_next_run_in_the_jobs_zone(api: Api) -> None:
    job = api.create_job(
        name="zoned",
        tags=["etl", "nightly"],
        description="Loads the <b>warehouse</b>",
        schedule="30 2 * * *",
        timezone="Asia/Tokyo",
    )
    html = Browser(api).text(f"/jobs/{job['id']}")
    header = html.split('id="job-status"')[1].split("</dl>")[0]
    assert 'href="/jobs?tags=nightly"' in header and "Loads the &lt;b&gt;warehouse" in header
    assert re.search(r"· \w{3} \w{3} \d\d, 02:30 Asia/Tokyo", header)
    assert "First run:" in html and "data-due=" in html.split("First run:")[1][:200]
    assert f'href="/jobs/{job["id"]}/definition#meta-h">Archive…' in header  # admin


def test_it_says_since_when_and_by_whom_a_job_is_paused(api: Api) -> None:
    job = api.create_job(name="held")
    browser = Browser(api)
    resp = browser.post(
        f"/jobs/{job['id']}/pause", {"reason": "disk full", "back": f"/jobs/{job['id']}"}
    )
    assert resp.status_code == 303
    banner = browser.text(f"/jobs/{job['id']}").split('class="banner warn"')[1].split("</div>")[0]
    assert re.search(r"Paused since <time[^>]*>[^<]+</time> by \S+: disk full", banner), banner


def test_it_flags_the_next_run_after_a_dst_change(api: Api) -> None:
    api.clock.set(datetime(2026, 3, 20, 12, 0, tzinfo=UTC))  # Paris: CET until March 29
    job = api.create_job(name="dst", schedule="30 2 * * *", timezone="Europe/Paris")
    html = Browser(api).text(f"/jobs/{job['id']}")
    rows = html.split('id="next-h"')[1].split("</tbody>")[0].split("<tr>")[2:]
    flagged = [r for r in rows if "clocks change" in r]
    assert len(flagged) == 1 and "(UTC+01:00 → UTC+02:00)" in flagged[0]
    assert "Sun Mar 29, 03:00" in flagged[0]  # 02:30 does not exist that day: run at 03:00


def test_it_says_skipped_not_healthy_when_the_last_slot_did_not_run(api: Api) -> None:
    job = api.create_job(name="gated")
    api.add_run(job["id"], api.clock.now() - timedelta(minutes=2), "succeeded")
    api.add_run(job["id"], api.clock.now() - timedelta(minutes=1), "skipped")
    page = Browser(api).text(f"/jobs/{job['id']}")
    assert 'data-job-status="skipped"' in page and 'data-job-status="healthy"' not in page
