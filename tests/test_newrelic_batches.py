"""New Relic batches: every event in exactly one POST, each under 1 MB, values flat and cut."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

from itinerary.webhooks import newrelic
from itinerary.webhooks.base import Event
from itinerary.webhooks.integrations import Integration

NR = Integration("nr", "newrelic", {"accountId": "42", "apiKey": "k" * 20, "region": "EU"})


def event(n: int) -> Event:
    variables = {"jobName": f"job{n}", "error": "x" * 9000, "duration": 1.5, "attempt": 2}
    return Event("alert", "on_failure", f"r{n}", n, variables, datetime(2026, 3, 1, tzinfo=UTC))


def test_it_splits_batches_under_a_megabyte_and_loses_no_event():
    posts = newrelic.batches(NR, [event(n) for n in range(600)])
    bodies = [json.loads(gzip.decompress(p.body)) for p, _ in posts]
    assert sorted(n for _, members in posts for n in members) == list(range(600))
    assert len(posts) == 3 and all(len(gzip.decompress(p.body)) < 1_000_000 for p, _ in posts)
    assert sorted(e["runId"] for b in bodies for e in b) == sorted(f"r{n}" for n in range(600))
    first = bodies[0][0]
    assert len(first["reason"]) == 4096 and first["eventType"] == "ItineraryJobRun"
    assert all(isinstance(v, str | int | float) for v in first.values())
    assert posts[0][0].url == "https://insights-collector.eu01.nr-data.net/v1/accounts/42/events"
