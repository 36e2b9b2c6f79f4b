"""Each service's exact request and answers, through the real handler to loopback receivers."""

from __future__ import annotations

import gevent
import pytest
import requests

from itinerary.clock import settle
from itinerary.webhooks import signing, ssrf
from itinerary.webhooks.handler import safe_url
from tests.receivers import Receiver
from tests.webhook_hub import Hub, start_hub

PD_KEY = "R0UT1NGKEY0123456789abcdefWXYZ99"


def test_it_posts_slack_text_and_blocks_escaped_with_a_run_link(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T1/B2/sekrit")
    hub.send("chat", job_name="a&b<c>", error="x < y && z")
    (record,) = hub.finals(1)
    seen = slack_rx.seen[0]
    assert (seen.method, seen.path, seen.headers["content-type"]) == (
        "POST",
        "/services/T1/B2/sekrit",
        "application/json",
    )
    body = seen.json()
    assert body["text"].startswith(":x: Job *a&amp;b&lt;c&gt;* failed")
    assert "x &lt; y &amp;&amp; z" in body["blocks"][2]["text"]["text"]
    assert "<https://itinerary.example.com/runs/rrun1|Open run rrun1>" in str(body["blocks"])
    assert body["attachments"][0]["color"] == "#d50000"
    assert (record.outcome, record.status_code, record.response) == ("delivered", 200, "ok")
    assert "sekrit" not in record.url


def test_it_does_not_retry_slack_invalid_payload(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    slack_rx.answer(400, "invalid_payload")
    hub.send("chat")
    (record,) = hub.finals(1)
    assert (record.outcome, record.attempt_count, record.status_code) == ("failed", 1, 400)
    assert len(slack_rx.seen) == 1 and "chat" not in hub.handler.attempts.broken


def test_it_honours_slacks_retry_after_on_the_fake_clock(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    slack_rx.answer(429, "rate_limited", Retry_After="30")
    hub.send("chat")
    slack_rx.wait_for(1)
    hub.clock.advance(29)
    gevent.sleep(0.1)
    assert len(slack_rx.seen) == 1  # not before Retry-After has passed
    records = hub.finals(1)
    assert len(slack_rx.seen) == 2 and records[0].attempt_count == 2
    assert [r.outcome for r in hub.records] == ["retrying", "delivered"]


def test_it_marks_slack_broken_on_no_service_and_stops_sending(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    slack_rx.answer(404, "no_service")
    hub.send("chat", run_id="r1")
    hub.send("chat", run_id="r2")
    first, second = hub.finals(2)
    assert first.error == "HTTP 404: no_service" and len(slack_rx.seen) == 1
    assert "is broken (Slack answered 404 no_service)" in second.error
    assert [m.reason for m in hub.others] == ["Slack answered 404 no_service"]


def test_it_sends_pagerduty_a_trigger_per_job_with_a_short_summary(hub: Hub, pagerduty_rx):
    hub.add("pd", "pagerduty", routingKey=PD_KEY, endpoint=pagerduty_rx.url + "/v2/enqueue")
    hub.send("pd", status="lost", error="E" * 5000, job_id=42)
    (record,) = hub.finals(1)
    seen = pagerduty_rx.seen[0]
    body = seen.json()
    assert seen.path == "/v2/enqueue" and "authorization" not in seen.headers
    assert (body["routing_key"], body["event_action"], body["dedup_key"]) == (
        PD_KEY,
        "trigger",
        "itinerary-job-42",
    )
    assert len(body["payload"]["summary"]) == 1024 and body["payload"]["severity"] == "critical"
    assert body["payload"]["source"] == "itinerary/prod"
    assert body["links"] == [
        {"href": "https://itinerary.example.com/runs/rrun1", "text": "Run rrun1"}
    ]
    assert record.outcome == "delivered" and record.status_code == 202


def test_it_retries_pagerduty_429_but_not_400(hub: Hub, pagerduty_rx: Receiver):
    hub.add("pd", "pagerduty", routingKey=PD_KEY, endpoint=pagerduty_rx.url + "/v2/enqueue")
    pagerduty_rx.answer(429, "")
    pagerduty_rx.answer(
        400,
        '{"status":"invalid event","message":"Event object is invalid",'
        '"errors":["Length of \'routing_key\' is incorrect"]}',
    )
    hub.send("pd")
    (record,) = hub.finals(1)
    assert [r.outcome for r in hub.records] == ["retrying", "failed"]
    assert len(pagerduty_rx.seen) == 2 and record.status_code == 400
    assert "routing key" in hub.handler.attempts.broken["pd"]


def test_it_batches_new_relic_events_gzipped_to_the_region_endpoint(hub: Hub, newrelic_rx):
    hub.add(
        "nr", "newrelic", accountId="12345", apiKey="NRAK-KEY123456789", endpoint=newrelic_rx.url
    )
    newrelic_rx.delay = 0.2  # the first post is in flight while the others queue up
    for n in range(5):
        hub.send("nr", run_id=f"r{n}", trigger="on_success", status="succeeded")
        gevent.sleep(0.01)
    records = hub.finals(5)
    posts = newrelic_rx.seen
    assert 1 < len(posts) < 5 and all(p.path == "/v1/accounts/12345/events" for p in posts)
    assert posts[0].headers["api-key"] == "NRAK-KEY123456789"
    assert posts[0].headers["content-encoding"] == "gzip"
    events = [e for p in posts for e in p.json()]
    assert sorted(e["runId"] for e in events) == [f"r{n}" for n in range(5)]
    assert events[0]["eventType"] == "ItineraryJobRun" and events[0]["duration"] == 12.5
    assert all(r.outcome == "delivered" for r in records)


def test_it_marks_new_relic_broken_on_403_and_gives_up_on_413(hub: Hub, newrelic_rx: Receiver):
    hub.add("nr", "newrelic", accountId=1, apiKey="bad-key-0000000", endpoint=newrelic_rx.url)
    hub.add("nr2", "newrelic", accountId=1, apiKey="good-key-000000", endpoint=newrelic_rx.url)
    newrelic_rx.answer(403, "")
    newrelic_rx.answer(413, "")
    hub.send("nr")
    hub.finals(1)
    hub.send("nr2")
    first, second = hub.finals(2)
    assert "403" in hub.handler.attempts.broken["nr"] and "nr2" not in hub.handler.attempts.broken
    assert (second.status_code, second.attempt_count, len(newrelic_rx.seen)) == (413, 1, 2)


def test_it_renders_a_custom_template_and_signs_it(hub: Hub, custom_rx: Receiver):
    secret = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4OTA="
    template = (
        '{"job": {{ jobName|tojson }}, "error": {{ error|tojson }}, "attempt": {{ attempt }}}'
    )
    hub.add(
        "hook",
        "custom",
        url=custom_rx.url + "/in",
        secret=secret,
        template=template,
        headers={"X-Team": "ops"},
    )
    hub.send("hook", error='quote " and \\ backslash')
    (record,) = hub.finals(1)
    seen = custom_rx.seen[0]
    assert seen.json() == {
        "job": "nightly-report",
        "error": 'quote " and \\ backslash',
        "attempt": 1,
    }
    assert signing.verify(secret, seen.headers, seen.raw)
    assert seen.headers["webhook-id"] == record.delivery_key and seen.headers["x-team"] == "ops"
    assert not signing.verify(
        "whsec_" + "b3RoZXItc2VjcmV0LWtleS0xMjM0NTY3OA==", seen.headers, seen.raw
    )


def test_it_records_a_template_error_and_the_sandbox_refuses_escapes(hub: Hub, custom_rx):
    hub.add("hook", "custom", url=custom_rx.url, template="{{ ''.__class__.__mro__ }}")
    hub.send("hook")
    (record,) = hub.finals(1)
    assert record.outcome == "failed" and "template" in record.error
    assert "__class__" in record.error and custom_rx.seen == []


def test_it_retries_server_errors_five_times_then_records_the_failure(hub: Hub, custom_rx):
    for _ in range(5):
        custom_rx.answer(503, "busy")
    hub.send(url=custom_rx.url + "/hook?token=s3cret")
    (record,) = hub.finals(1, advance=10)
    assert [r.attempt_count for r in hub.records] == [1, 2, 3, 4, 5]
    assert [r.outcome for r in hub.records] == ["retrying"] * 4 + ["failed"]
    assert record.status_code == 503 and "s3cret" not in record.url
    assert hub.stats[-1].retries == 4 and hub.stats[-1].ok is False


def test_it_rate_limits_slack_to_one_message_a_second(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    for n in range(3):
        hub.send("chat", run_id=f"r{n}")
    slack_rx.wait_for(1)
    gevent.sleep(0.2)
    assert len(slack_rx.seen) == 1  # the fake clock has not moved: the others wait
    hub.finals(3, advance=0.5)
    assert len(slack_rx.seen) == 3


def test_it_never_lets_a_slow_receiver_delay_another(clock, custom_rx, slack_rx):
    h = start_hub(clock, webhook_concurrency=3)
    custom_rx.delay = 3.0
    for n in range(6):  # more than every slot
        h.send(url=custom_rx.url + "/slow", run_id=f"slow{n}")
    h.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    h.send("chat", run_id="fast")
    with gevent.Timeout(1.5):
        slack_rx.wait_for(1)
    h.drain()
    assert [r.run_id for r in h.records] == ["fast"] and len(custom_rx.seen) == 2


def test_it_refuses_private_addresses_when_asked(clock, custom_rx: Receiver):
    h = start_hub(clock, webhook_deny_private=True)
    h.send(url=custom_rx.url + "/x")
    (record,) = h.finals(1)
    assert "--webhook-deny-private" in record.error and "127.0.0.1" in record.error
    assert custom_rx.seen == [] and record.outcome == "failed"


def test_it_checks_the_address_it_connected_to_not_only_the_name(custom_rx: Receiver):
    # What DNS rebinding would give: a name checked as public that connects to loopback.
    with pytest.raises(requests.ConnectionError, match="refused by --webhook-deny-private"):
        ssrf.guarded_session(2).post(custom_rx.url + "/x", data=b"{}", timeout=5)
    assert custom_rx.seen == [] and ssrf.forbidden("169.254.169.254")
    assert ssrf.forbidden("::ffff:10.0.0.1") and not ssrf.forbidden("93.184.216.34")


def test_it_records_an_unknown_integration_as_failed(hub: Hub):
    hub.send("slack-oncall")
    (record,) = hub.finals(1)
    assert record.outcome == "failed" and "no integration named 'slack-oncall'" in record.error


def test_it_records_what_shutdown_leaves_undelivered(hub: Hub, slack_rx: Receiver):
    hub.add("chat", "slack", url=slack_rx.url + "/services/T/B/x")
    for n in range(3):
        hub.send("chat", run_id=f"r{n}")
    slack_rx.wait_for(1)
    from itinerary.messages import ShutDown

    hub.handler.inbox.put(ShutDown())
    hub.worker.join(timeout=5)
    settle()
    outcomes = sorted(r.outcome for r in hub.finals(3))
    assert outcomes == ["delivered", "not_delivered", "not_delivered"]
    assert all("shut down" in r.error for r in hub.records if r.outcome == "not_delivered")


def test_safe_url_drops_credentials_and_query():
    assert safe_url("https://u:p@h.example:8443/x?token=1") == "https://h.example:8443/x"
