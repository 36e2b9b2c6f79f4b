"""The alert policy of webhook actions, on the fake clock: counts, dedup, re-alerts, recovery."""

from __future__ import annotations

import pytest

from itinerary import alertpolicy as policy
from itinerary.messages import ActionRunRecord
from tests.receivers import Receiver
from tests.webhook_hub import Hub

PD_KEY = "R0UT1NGKEY0123456789abcdefWXYZ99"


def outcomes(hub: Hub) -> list[tuple[str | None, str | None]]:
    """(run, outcome) of every record, in run order (deliveries end after suppressions)."""
    return sorted((r.run_id, r.outcome) for r in hub.records)


def test_it_alerts_only_after_n_consecutive_failures(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    hub.send("chat", run_id="r1", policy={"afterFailures": 2})
    hub.send("chat", run_id="r2", policy={"afterFailures": 2})
    hub.finals(2)
    assert outcomes(hub) == [("r1", "suppressed"), ("r2", "delivered")]
    assert any("failure 1 of 2" in (r.error or "") for r in hub.records)
    assert len(slack_rx.seen) == 1


def test_it_alerts_once_for_a_run_that_fails_is_retried_and_fails_again(hub: Hub, slack_rx):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    early = {"afterLastRetry": False}
    hub.send("chat", run_id="r1", kind="attempt", policy=early)
    hub.send("chat", run_id="r1", policy=early)
    hub.send("chat", run_id="r2", kind="attempt", policy={})  # default: wait for the last retry
    hub.finals(3)
    assert outcomes(hub) == [("r1", "delivered"), ("r1", "suppressed"), ("r2", "suppressed")]
    assert any("alerted already" in (r.error or "") for r in hub.records)
    assert len(slack_rx.seen) == 1


def test_it_re_alerts_at_most_every_interval(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    every = {"realertEvery": "10m"}
    hub.send("chat", run_id="r1", policy=every)
    hub.finals(1)
    hub.clock.advance(300)
    hub.send("chat", run_id="r2", policy=every)
    hub.clock.advance(301)
    hub.send("chat", run_id="r3", policy=every)
    hub.finals(3)
    assert outcomes(hub) == [("r1", "delivered"), ("r2", "suppressed"), ("r3", "delivered")]


def test_it_says_when_the_job_recovers_and_only_after_an_alert(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    hub.send("chat", run_id="r0", kind="recovery", status="succeeded")  # nothing was open
    hub.send("chat", run_id="r1")
    hub.send("chat", run_id="r2", kind="recovery", status="succeeded", trigger="on_failure")
    hub.finals(2, advance=1)
    texts = [s.json()["text"] for s in slack_rx.seen]
    assert len(texts) == 2 and "recovered" in texts[1]
    assert slack_rx.seen[1].json()["attachments"][0]["color"] == "#2e7d32"


def test_it_resolves_the_pagerduty_incident_on_the_next_success(hub: Hub, pagerduty_rx):
    hub.add("pd", "pagerduty", routingKey=PD_KEY, endpoint=pagerduty_rx.url + "/v2/enqueue")
    hub.send("pd", run_id="r1", job_id=9)
    hub.send("pd", run_id="r2", job_id=9, kind="recovery", policy={"recovery": False})
    hub.finals(2)
    trigger, resolve = (s.json() for s in pagerduty_rx.seen)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == "itinerary-job-9"
    assert "payload" not in resolve


def test_it_checks_the_policy_keys():
    assert policy.parse({"afterFailures": 3, "realertEvery": "1h"}).realert_every == 3600
    with pytest.raises(ValueError, match="afterFailures"):
        policy.parse({"afterFailures": 0})
    with pytest.raises(ValueError, match="recovery"):
        policy.parse({"recovery": "yes"})


def test_it_resolves_after_a_restart_once_per_job_but_never_says_recovered_unasked(
    hub: Hub, pagerduty_rx: Receiver, slack_rx: Receiver
):
    hub.add("pd", "pagerduty", routingKey=PD_KEY, endpoint=pagerduty_rx.url + "/v2/enqueue")
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    for run in ("r1", "r2"):  # a fresh handler: it cannot know what was open before
        hub.send("pd", run_id=run, job_id=9, kind="recovery", status="succeeded")
        hub.send("chat", run_id=run, job_id=9, kind="recovery", status="succeeded")
    hub.finals(1)
    assert [s.json()["event_action"] for s in pagerduty_rx.seen] == ["resolve"]
    assert slack_rx.seen == []


def test_it_completes_the_action_run_with_the_outcome_or_the_policys_reason(hub: Hub, slack_rx):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    hub.send("chat", run_id="r1", action_run_id=11, policy={"afterFailures": 2})
    hub.send("chat", run_id="r2", action_run_id=12, policy={"afterFailures": 2})
    hub.finals(2)
    done = {m.id: m for m in hub.others if isinstance(m, ActionRunRecord)}
    assert (done[11].success, done[11].details["state"]) == (True, "suppressed")
    assert "failure 1 of 2" in done[11].error
    assert (done[12].success, done[12].details["state"], done[12].details["statusCode"]) == (
        True,
        "delivered",
        200,
    )
    assert done[12].details["integration"] == "chat" and "/services" not in done[12].details["url"]
