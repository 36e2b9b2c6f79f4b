"""The run-history Gantt's data and page (/history) on all three databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from itinerary import gantt
from itinerary.history import Anomaly
from itinerary.web import history
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.web_fakes import Browser


def _seed(api: Api) -> dict[str, Any]:
    """Two jobs: `etl` (tag nightly) with a 10 s success, a 5 m failure, a running run and a
    skipped slot; `report` (no tags) with one 1 m success and a run from 3 days ago."""
    now = api.clock.now()
    etl = api.create_job(name="etl", tags=["nightly"])
    report = api.create_job(name="report")
    t = now - timedelta(hours=2)
    ids = {
        "etl": etl["id"],
        "report": report["id"],
        "ok": api.add_run(etl["id"], t, started_at=t, completed_at=t + timedelta(seconds=10)),
        "fail": api.add_run(
            etl["id"],
            t + timedelta(hours=1),
            status="failed",
            reason="<img src=x onerror=alert(1)>",
            started_at=t + timedelta(hours=1, seconds=30),
            completed_at=t + timedelta(hours=1, minutes=5, seconds=30),
        ),
        "running": api.add_run(
            etl["id"],
            now - timedelta(minutes=3),
            status="running",
            started_at=now - timedelta(minutes=3),
        ),
        "skipped": api.add_run(
            etl["id"], now - timedelta(minutes=30), status="skipped", reason="busy"
        ),
        "report_ok": api.add_run(
            report["id"], t, started_at=t, completed_at=t + timedelta(minutes=1)
        ),
        "old": api.add_run(
            report["id"], now - timedelta(days=3), started_at=now - timedelta(days=3)
        ),
    }
    return ids


def _data(browser: Browser, query: str = "") -> Any:
    resp = browser.get(f"/history/data.json?{query}", headers={"Accept": "application/json"})
    return resp.status_code, resp.get_json()


def test_it_serves_the_windows_runs_as_compact_arrays(api: Api) -> None:
    ids = _seed(api)
    status, data = _data(Browser(api), "range=24h")
    assert status == 200 and data["total"] == 5 and not data["cut"]
    assert data["jobs"] == ["etl", "report"]  # names once, runs point at them
    by_id = {r[0]: r for r in data["runs"]}
    assert set(by_id) == {ids[k] for k in ("ok", "fail", "running", "skipped", "report_ok")}
    fail = by_id[ids["fail"]]
    assert data["jobs"][fail[1]] == "etl" and data["states"][fail[5]] == "failed"
    assert fail[4] - fail[3] == 300_000 and fail[3] - fail[2] == 30_000
    assert by_id[ids["running"]][4] is None and by_id[ids["skipped"]][3] is None
    assert fail[9] == "<img src=x onerror=alert(1)>"  # data, for textContent


def test_it_filters_the_gantt_by_length_tags_name_state_and_range(api: Api) -> None:
    ids = _seed(api)
    browser = Browser(api)

    def run_ids(query: str) -> set[str]:
        status, data = _data(browser, query)
        assert status == 200, data
        return {r[0] for r in data["runs"]}

    assert run_ids("min=1m") == {ids["fail"], ids["running"], ids["report_ok"]}
    assert run_ids("max=30s") == {ids["ok"]}
    assert run_ids("tags=nightly&state=failed,skipped") == {ids["fail"], ids["skipped"]}
    assert run_ids("name=rep") == {ids["report_ok"]}
    assert run_ids("range=7d&name=report") == {ids["report_ok"], ids["old"]}
    old = (api.clock.now() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    assert run_ids(f"from={old}&to=" + api.clock.now().strftime("%Y-%m-%dT%H:%M")) == run_ids(
        "range=7d"
    )


def test_it_refuses_bad_gantt_filters_naming_each_field(api: Api) -> None:
    browser = Browser(api)
    status, body = _data(browser, "range=soon&min=fast&state=done&from=")
    assert status == 400
    assert set(body["error"]["fields"]) == {"range", "min", "state"}
    status, body = _data(browser, "from=2026-03-02T00:00&to=2026-03-01T00:00")
    assert status == 400 and "after" in body["error"]["fields"]["to"]
    page = browser.get("/history?min=fast")
    assert page.status_code == 400 and "is not a duration" in page.get_data(as_text=True)


def test_it_flags_anomalous_and_behind_schedule_runs(api: Api) -> None:
    ids = _seed(api)
    now = api.clock.now()
    api.database.write(
        lambda: Anomaly.insert(
            id=9,
            job_id=ids["etl"],
            run_id=ids["fail"],
            kind="duration",
            detected_at=now,
            score=5.0,
            explanation="slow",
        ).execute(api.database.writer)
    )
    late = api.add_run(
        ids["report"],
        now - timedelta(minutes=9),
        status="running",
        started_at=now - timedelta(minutes=9),
        behind_schedule=True,
    )
    _, data = _data(Browser(api))
    flags = {r[0]: r[8] for r in data["runs"]}
    assert flags[ids["fail"]] == gantt.ANOMALY and flags[late] == gantt.BEHIND
    assert flags[ids["ok"]] == 0


def test_it_cuts_at_the_cap_keeping_the_newest_and_counting_all(api: Api) -> None:
    ids = _seed(api)
    now = api.clock.now()
    f = gantt.GanttFilter(start=now - timedelta(days=1), end=now, cap=2)
    data = api.database.read(gantt.gantt_data, f, now)
    assert data["total"] == 5 and data["cut"] and len(data["runs"]) == 2
    assert {r[0] for r in data["runs"]} == {ids["running"], ids["skipped"]}


def test_it_sends_only_runs_changed_since_the_cursor(api: Api) -> None:
    ids = _seed(api)
    browser = Browser(api)
    _, first = _data(browser)
    api.clock.advance(60)
    later = api.clock.now()
    api.add_run(ids["etl"], later - timedelta(seconds=5), status="running", started_at=later)
    _, step = _data(browser, f"updated_after={first['cursor'] + 1}")
    assert [data_row[0] for data_row in step["runs"]] != [] and len(step["runs"]) == 1
    assert step["cursor"] > first["cursor"]


def test_it_lists_the_same_runs_as_a_paginated_table_escaping_reasons(api: Api) -> None:
    _seed(api)
    browser = Browser(api)
    html = browser.text("/history?view=table&tags=nightly")
    assert html.count('href="/runs/r') == 4 and "report" not in html.split("<tbody>")[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert "echarts" not in html  # ECharts is loaded by the chart view only
    chart = browser.text("/history?range=6h")
    assert 'id="gantt"' in chart and "/static/vendor/echarts-6.1.0.min.js" in chart
    assert 'data-src="/history/data.json?range=6h"' in chart
    assert '<link rel="preload" href="/history/data.json?range=6h" as="fetch"' in chart


def test_it_offers_the_zones_of_the_filtered_jobs_on_the_zone_switch(api: Api) -> None:
    api.create_job(name="paris", timezone="Europe/Paris")
    api.create_job(name="tokyo", timezone="Asia/Tokyo")
    browser = Browser(api)
    both = browser.text("/history")
    assert '<option value="Asia/Tokyo">' in both and '<option value="Europe/Paris">' in both
    one = browser.text("/history?name=paris")
    assert '<option value="Europe/Paris">' in one and "Asia/Tokyo" not in one
    assert "Europe/Paris" not in browser.text("/history?name=nothing")


def test_it_keeps_the_gantt_data_2_s_then_reads_again(api: Api) -> None:
    ids = _seed(api)
    browser = Browser(api)
    assert _data(browser)[1]["total"] == 5
    api.add_run(ids["report"], api.clock.now() - timedelta(minutes=1))
    api.clock.advance(1)
    assert _data(browser)[1]["total"] == 5  # the cached answer
    api.clock.advance(history.DATA_TTL_S)
    assert _data(browser)[1]["total"] == 6


def test_it_sends_a_change_after_a_cached_poll_late_but_never_lost(api: Api) -> None:
    ids = _seed(api)
    browser = Browser(api)
    query = f"updated_after={_data(browser)[1]['cursor'] + 1}"
    assert _data(browser, query)[1]["runs"] == []
    new = api.add_run(ids["etl"], api.clock.now(), status="running", started_at=api.clock.now())
    assert _data(browser, query)[1]["runs"] == []  # cached: the poll's cursor stays put
    api.clock.advance(history.DATA_TTL_S)
    assert [r[0] for r in _data(browser, query)[1]["runs"]] == [new]
