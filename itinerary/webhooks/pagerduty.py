"""PagerDuty Events API v2: one incident per broken job, resolved by its next success.

The `dedup_key` is per job (`itinerary-job-<id>`), not per run, so a job failing
every minute keeps one incident open, and a `resolve` with the same key closes
it. The summary is cut to PagerDuty's 1,024 characters (a longer one is a 400);
the severity is mapped from the run's state (integrations.severity_for). A 400
about the routing key, or a 404 (no such service), means the integration is
misconfigured: it is marked broken rather than retried.
"""

from __future__ import annotations

import json

from itinerary.webhooks.base import Event, Outgoing, Verdict, excerpt, verdict
from itinerary.webhooks.integrations import Integration, severity_for

ENDPOINT = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
DETAIL_MAX = 8192


def dedup_key(event: Event) -> str:
    return f"itinerary-job-{event.job_id}" if event.job_id is not None else "itinerary-test"


def build(integration: Integration, event: Event) -> Outgoing:
    v = event.variables
    body: dict = {
        "routing_key": integration.config["routingKey"],
        "dedup_key": dedup_key(event),
        "event_action": "resolve" if event.kind == "recovery" else "trigger",
    }
    if event.kind != "recovery":
        if event.kind == "test":
            summary = "Itinerary test event: this integration works"
        else:
            summary = f"Job {event.job_name} {event.state}"
            if v.get("error"):
                summary += f": {v['error']}"
        body["payload"] = {
            "summary": excerpt(summary, SUMMARY_MAX),
            "source": f"itinerary/{v.get('cluster') or 'default'}",
            "severity": severity_for(integration, event.state),
            "timestamp": event.at.isoformat().replace("+00:00", "Z"),
            "component": event.job_name,
            "group": str(v.get("jobNamespace") or "default"),
            "class": event.state,
            "custom_details": {
                **{k: v.get(k) for k in ("runID", "status", "slot", "attempt", "duration")},
                "error": excerpt(v.get("error"), DETAIL_MAX),  # the event stays far below 512 KB
            },
        }
        body["client"] = "Itinerary"
    if v.get("runURL"):
        body["links"] = [{"href": v["runURL"], "text": f"Run {event.run_id}"}]
        body["client_url"] = v["runURL"]
    return Outgoing(
        "POST",
        integration.config.get("endpoint") or ENDPOINT,
        {"Content-Type": "application/json"},
        json.dumps(body, ensure_ascii=False).encode(),
    )


def classify(status: int | None, body: str, retry_after: float | None) -> Verdict:
    if status == 400 and "routing_key" in body:
        return Verdict(False, broken="PagerDuty refused the routing key (400 invalid event)")
    if status == 404:
        return Verdict(False, broken="PagerDuty answered 404: no such service or endpoint")
    return verdict(status, body, retry_after)
