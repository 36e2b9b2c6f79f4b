"""New Relic Event API: an `ItineraryJobRun` custom event per finished run, batched.

Events are flat (strings and numbers only, values cut to 4,096 characters), sent
as a JSON array to the account's region endpoint with `Api-Key` and gzip. A batch
is cut so its uncompressed JSON stays under 1 MB (10^6 bytes), which keeps the
gzipped POST under New Relic's limit whatever the compression ratio. A 403 (bad
key) marks the integration broken; 413 is not retried (the batch is already
within the limit, so the events themselves are too large).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable

from itinerary.webhooks.base import Event, Outgoing, Verdict, verdict
from itinerary.webhooks.integrations import Integration

HOSTS = {
    "US": "https://insights-collector.newrelic.com",
    "EU": "https://insights-collector.eu01.nr-data.net",
}
MAX_BYTES = 1_000_000
TAKE = 500  # events taken off a destination's queue at once (a few POSTs at most)
VALUE_MAX = 4096


def endpoint(integration: Integration) -> str:
    c = integration.config
    base = c.get("endpoint") or HOSTS[c.get("region", "US")]
    return f"{base.rstrip('/')}/v1/accounts/{c['accountId']}/events"


def attributes(integration: Integration, event: Event) -> dict:
    v = event.variables
    raw = {
        "eventType": integration.config.get("eventType", "ItineraryJobRun"),
        "timestamp": int(event.at.timestamp()),
        "job": event.job_name,
        "jobId": event.job_id,
        "namespace": v.get("jobNamespace"),
        "cluster": v.get("cluster"),
        "runId": event.run_id,
        "state": event.state,
        "duration": v.get("duration"),
        "attempt": v.get("attempt"),
        "trigger": v.get("runTrigger"),
        "lateness": v.get("lateness"),
        "exitCode": v.get("exitCode"),
        "reason": v.get("error"),
        "slot": v.get("slot"),
    }
    out: dict = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif not isinstance(value, int | float):
            value = str(value)[:VALUE_MAX]
        out[key] = value
    return out


def batches(integration: Integration, events: Iterable[Event]) -> list[tuple[Outgoing, list[int]]]:
    """One or more gzipped POSTs holding every event, each under MAX_BYTES; with each, the
    positions (in `events`) of the events it carries."""
    out: list[tuple[Outgoing, list[int]]] = []
    parts: list[bytes] = []
    members: list[int] = []
    size = 2
    for n, event in enumerate(events):
        part = json.dumps(attributes(integration, event), ensure_ascii=False).encode()
        if members and size + len(part) + 1 > MAX_BYTES:
            out.append((_post(integration, parts), members))
            parts, members, size = [], [], 2
        parts.append(part)
        members.append(n)
        size += len(part) + 1
    if members:
        out.append((_post(integration, parts), members))
    return out


def _post(integration: Integration, parts: list[bytes]) -> Outgoing:
    body = b"[" + b",".join(parts) + b"]"
    return Outgoing(
        "POST",
        endpoint(integration),
        {
            "Api-Key": integration.config["apiKey"],
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        gzip.compress(body, compresslevel=5),
    )


def build(integration: Integration, event: Event) -> Outgoing:
    return batches(integration, [event])[0][0]


def classify(status: int | None, body: str, retry_after: float | None) -> Verdict:
    if status == 403:
        return Verdict(False, broken="New Relic refused the key (403)")
    return verdict(status, body, retry_after)
