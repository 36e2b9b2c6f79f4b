"""Schedule preview, stats, and the error shape for routes that do not exist."""

from __future__ import annotations

from datetime import timedelta

from itinerary.models import SchedulerStats
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture


def test_it_previews_a_schedule(api: Api) -> None:
    body = {
        "schedule": "0 * * * *",
        "timezone": "America/New_York",
        "count": 3,
        "from": "2026-11-01T04:30:00Z",
    }
    resp = api.post("/schedule/preview", json=body)
    assert resp.status_code == 200
    # It should fire in both repeated 01:00 hours, like the scheduler (cronie rule).
    assert resp.get_json()["nextRuns"] == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T07:00:00Z",
    ]
    assert "America/New_York" in resp.get_json()["description"]


def test_it_names_bad_preview_fields(api: Api) -> None:
    resp = api.post("/schedule/preview", json={"schedule": "* * *", "count": 0, "x": 1})
    assert set(resp.get_json()["error"]["fields"]) == {"count", "x"}
    resp = api.post("/schedule/preview", json={"schedule": "* * *"})
    assert resp.status_code == 400 and "schedule" in resp.get_json()["error"]["fields"]
    resp = api.post("/schedule/preview", json={"schedule": "* * * * *", "timezone": "Nowhere"})
    assert "timezone" in resp.get_json()["error"]["fields"]


def test_it_sums_stats_over_a_window(api: Api) -> None:
    job = api.create_job()
    now = api.clock.now()
    api.add_run(job["id"], now - timedelta(minutes=5))
    api.add_run(job["id"], now - timedelta(minutes=4), status="failed")
    api.add_run(job["id"], now - timedelta(days=3), status="failed")
    start = int((now - timedelta(minutes=2)).timestamp())

    def seed() -> None:
        for i in range(2):
            SchedulerStats.insert(
                stats_period_id=start + 60 * i,
                start_time=now,
                end_time=now,
                iterations=10,
                late_jobs=i,
            ).execute(api.database.writer)

    api.database.write(seed)
    stats = api.get("/stats?from=-1h").get_json()
    assert stats["runsByState"] == {"succeeded": 1, "failed": 1}
    assert stats["scheduler"]["iterations"] == 20 and stats["scheduler"]["lateJobs"] == 1
    assert stats["scheduler"]["periods"] == 2 and stats["jobs"] == {"total": 1, "paused": 0}
    assert api.get("/stats?from=-1h&to=-2h").status_code == 400


def test_it_answers_unknown_routes_in_the_error_shape(api: Api) -> None:
    resp = api.get("/nothing")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    resp = api.call("PATCH", "/jobs")
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"
