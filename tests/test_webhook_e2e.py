"""End to end in one real process: a failed run triggers PagerDuty, the next success resolves."""

from __future__ import annotations

import dataclasses
import sys

import requests

from itinerary import config as cfg
from itinerary.app import App

PD_KEY = "R0UT1NGKEY0123456789abcdefWXYZ99"


def test_it_triggers_pagerduty_on_failure_and_resolves_on_the_next_success(tmp_path, pagerduty_rx):
    flag = tmp_path / "healthy"
    config = dataclasses.replace(
        cfg.load(None, {}),
        db_dsn=f"sqlite:///{tmp_path}/it.db",
        port=0,
        log_dir=str(tmp_path / "logs"),
        public_url="https://itinerary.example.com",
    )
    app = App(config)
    app.start()
    try:
        api = f"{app.url}/api/v1"
        pd = {"routingKey": PD_KEY, "endpoint": pagerduty_rx.url + "/v2/enqueue"}
        assert (
            requests.post(
                f"{api}/integrations",
                json={"name": "pd", "type": "pagerduty", "config": pd},
                timeout=5,
            ).status_code
            == 201
        )
        check = f"import os,sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 3)"
        job = {
            "name": "etl",
            "commands": [[sys.executable, "-c", check]],
            "actions": [
                {"type": "webhook", "trigger": "on_failure", "config": {"integration": "pd"}}
            ],
        }
        job_id = requests.post(f"{api}/jobs", json=job, timeout=5).json()["id"]
        first = requests.post(f"{api}/runs/{job_id}", json={}, timeout=5).json()
        trigger = pagerduty_rx.wait_for(1, timeout=30)[0].json()
        flag.write_text("ok")
        requests.post(f"{api}/runs/{job_id}", json={}, timeout=5)
        resolve = pagerduty_rx.wait_for(2, timeout=30)[1].json()
    finally:
        app.stop()
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"] == "Job etl failed: exit code 3"
    assert trigger["links"][0]["href"] == f"https://itinerary.example.com/runs/{first['runId']}"
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]
