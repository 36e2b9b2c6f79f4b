"""Replicas: every process serves, one schedules, commands reach it from any of them.

Real `itinerary.py` processes on one database (three on PostgreSQL and MariaDB, two on
one SQLite file); side effects are counted in the workloads' own files.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from tests.replicas import effect_job, effects_of, leader_of, start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # real processes, minute boundaries


def _names(dsn: str) -> list[str]:
    return ["a", "b"] if dsn.startswith("sqlite") else ["a", "b", "c"]


def test_it_serves_on_every_replica_and_only_one_schedules(empty_dsn, tmp_path) -> None:
    replicas = start(_names(empty_dsn), empty_dsn, tmp_path)
    try:
        for replica in replicas:  # every one serves at once, standbys included
            assert replica.get("/healthz").status_code == 200
            ready = wait_for(lambda r=replica: r.get("/readyz"), 10, "ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["leader"] == replicas[0].get("/readyz").json()["name"]
            assert replica.get("/api/v1/jobs").status_code == 200
        assert leader_of(replicas) is replicas[0]
        roles = sorted(r.get("/readyz").json()["role"] for r in replicas)
        assert roles == ["leader"] + ["standby"] * (len(replicas) - 1)
    finally:
        stop(replicas)


def test_it_applies_a_command_sent_to_a_standby_once(empty_dsn, tmp_path) -> None:
    effects = tmp_path / "effects"
    effects.mkdir()
    replicas = start(_names(empty_dsn), empty_dsn, tmp_path)
    try:
        standby = replicas[-1]
        created = standby.post("/api/v1/jobs", effect_job("echo", effects))
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        began = time.monotonic()
        ran = standby.post(f"/api/v1/runs/{job_id}", {"args": ["once"]})
        assert ran.status_code == 202, ran.text
        run_id = ran.json()["runId"]
        assert time.monotonic() - began < 3  # answered through the table, not a timeout
        done = wait_for(lambda: effects_of(effects / "echo"), 20, "the run's side effect")
        time.sleep(2)  # a second application would show by now
        assert effects_of(effects / "echo") == done and [(r, t) for r, _, t in done] == [
            ("a", "once")
        ]
        run = wait_for(lambda: replicas[1].get(f"/api/v1/runs/{run_id}").json(), 10, "the run")
        assert run["runId"] == run_id
    finally:
        stop(replicas)


def test_it_cancels_through_a_standby_and_says_why_a_second_cancel_is_refused(
    empty_dsn, tmp_path
) -> None:
    replicas = start(_names(empty_dsn), empty_dsn, tmp_path)
    try:
        long = {"name": "long", "commands": [["sleep", "60"]], "manuallyRunnable": True}
        job_id = replicas[1].post("/api/v1/jobs", long).json()["id"]
        run_id = replicas[1].post(f"/api/v1/runs/{job_id}", {}).json()["runId"]
        running = lambda: replicas[0].get(f"/api/v1/runs/{run_id}").json().get("state")  # noqa: E731
        wait_for(lambda: running() == "running", 20, "the run to start")
        cancelled = requests.delete(replicas[-1].url + f"/api/v1/runs/{run_id}", timeout=15)
        assert cancelled.status_code == 202, cancelled.text
        wait_for(lambda: running() == "killed", 30, "the run to be killed")
        again = requests.delete(replicas[1].url + f"/api/v1/runs/{run_id}", timeout=15)
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_active"
    finally:
        stop(replicas)


def _past_a_boundary_soon() -> None:
    """Start well clear of a minute boundary: a slot launched before a change is not at issue."""
    if time.time() % 60 > 30:
        time.sleep(61 - time.time() % 60)


def test_it_skips_the_next_slot_through_a_standby_once(empty_dsn, tmp_path) -> None:
    effects = tmp_path / "effects"
    effects.mkdir()
    replicas = start(_names(empty_dsn), empty_dsn, tmp_path)
    try:
        standby = replicas[-1]
        _past_a_boundary_soon()
        body = effect_job("tick", effects, schedule="* * * * *")
        job_id = standby.post("/api/v1/jobs", body).json()["id"]
        skipped = standby.post(f"/api/v1/jobs/{job_id}/skip-next", {"reason": "maintenance"})
        assert skipped.status_code == 200, skipped.text
        slot = skipped.json()["scheduledAt"]
        runs = lambda: standby.get(f"/api/v1/jobs/{job_id}/runs").json()["items"]  # noqa: E731
        recorded = wait_for(lambda: [r for r in runs() if r["scheduledAt"] == slot], 90, "slot")
        time.sleep(2)  # a second record or a start would show by now
        recorded = [r for r in runs() if r["scheduledAt"] == slot]
        assert [(r["state"], r["reason"]) for r in recorded] == [("skipped", "maintenance")]
        at = datetime.fromisoformat(slot).timestamp()  # an earlier slot may have run
        assert [t for _, t, _ in effects_of(effects / "tick") if at <= t < at + 60] == []
    finally:
        stop(replicas)


@pytest.mark.parametrize("empty_dsn", ["postgres"], indirect=True)  # two minute boundaries
def test_it_pauses_and_resumes_through_a_standby(empty_dsn, tmp_path) -> None:
    effects = tmp_path / "effects"
    effects.mkdir()
    replicas = start(["a", "b"], empty_dsn, tmp_path)
    try:
        standby = replicas[-1]
        _past_a_boundary_soon()
        body = effect_job("tick", effects, schedule="* * * * *")
        job_id = standby.post("/api/v1/jobs", body).json()["id"]
        paused = standby.post(f"/api/v1/jobs/{job_id}/pause", {"reason": "freeze"})
        assert paused.status_code == 200 and paused.json()["enabled"] is False
        time.sleep(61 - time.time() % 60 + 8)  # past the next boundary
        assert effects_of(effects / "tick") == [] and replicas[0].leads()
        assert standby.post(f"/api/v1/jobs/{job_id}/resume").status_code == 200
        ran = wait_for(lambda: effects_of(effects / "tick"), 75, "a run after resuming")
        assert [(r, tag) for r, _, tag in ran] == [("a", "scheduled")]
    finally:
        stop(replicas)
