"""Run-length filters (`min_duration`, `max_duration`) on all three databases."""

from __future__ import annotations

from datetime import timedelta

from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture


def _seed(api: Api) -> dict[str, str]:
    """Runs of 10 s, 30 s, 5 m (finished), one running for 2 m so far, one never started."""
    job = api.create_job()
    now = api.clock.now()
    ids = {}
    for i, seconds in enumerate((10, 30, 300)):
        t = now - timedelta(hours=i + 1)
        ids[f"{seconds}s"] = api.add_run(
            job["id"], t, started_at=t, completed_at=t + timedelta(seconds=seconds)
        )
    t = now - timedelta(minutes=2)
    ids["running"] = api.add_run(job["id"], t, status="running", started_at=t)
    ids["waiting"] = api.add_run(job["id"], now - timedelta(minutes=1), status="waiting")
    return {"job": str(job["id"]), **ids}


def _ids(api: Api, query: str, path: str = "/runs") -> set[str]:
    resp = api.get(f"{path}?{query}")
    assert resp.status_code == 200, resp.get_json()
    return {r["runId"] for r in resp.get_json()["items"]}


def test_it_filters_runs_by_run_length(api: Api) -> None:
    ids = _seed(api)
    # It should include the bounds exactly and measure a running run up to now.
    assert _ids(api, "min_duration=30s") == {ids["30s"], ids["300s"], ids["running"]}
    assert _ids(api, "max_duration=30s") == {ids["10s"], ids["30s"]}
    assert _ids(api, "min_duration=1m&max_duration=3m") == {ids["running"]}
    assert _ids(api, "min_duration=5m&max_duration=5m") == {ids["300s"]}


def test_it_filters_a_jobs_runs_by_run_length(api: Api) -> None:
    ids = _seed(api)
    path = f"/jobs/{ids['job']}/runs"
    assert _ids(api, "max_duration=15s", path) == {ids["10s"]}
    assert _ids(api, "min_duration=4m&limit=1", path) == {ids["300s"]}


def test_it_refuses_bad_run_lengths_naming_the_field(api: Api) -> None:
    bad = api.get("/runs?min_duration=soon")
    assert bad.status_code == 400
    assert "not a duration" in bad.get_json()["error"]["fields"]["min_duration"]
    crossed = api.get("/runs?min_duration=5m&max_duration=1m")
    assert crossed.status_code == 400
    assert "max_duration" in crossed.get_json()["error"]["fields"]
    assert api.get("/runs?max_duration=-5s").status_code == 400
