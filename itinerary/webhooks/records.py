"""What a delivery leaves behind: `webhook_deliveries` rows and completed action runs.

Every attempt is one row (outcome `retrying`, `delivered`, `failed`, `not_delivered` or
`suppressed`, the answer's first characters, the delivery's id); a webhook action's
"pending" action run is completed with the final outcome. Everything recorded is first
scrubbed of the integration's secrets (a Slack URL in a connection error, a key echoed in
an answer) and shows URLs without what may be secret in them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from gevent.queue import Queue

from itinerary.clock import Clock
from itinerary.ids import RunId, new_row_id
from itinerary.messages import ActionRunRecord, WebhookDeliveryRecord
from itinerary.webhooks.base import Event, Outgoing
from itinerary.webhooks.integrations import MASK, Integration


@dataclass(frozen=True, eq=False)
class Delivery:
    integration: Integration
    event: Event
    template: str | None = None  # the action's own template (custom and inline URLs)
    body: str | None = None  # the action's template as the orchestrator rendered it
    headers: dict[str, str] = field(default_factory=dict)  # the action's own headers
    action_run_id: int | None = None  # the action run ("pending") to complete with the outcome
    action_at: datetime | None = None  # when the action was taken (its row's time)


@dataclass(frozen=True)
class Answer:
    status: int | None
    text: str
    error: str | None
    retry_after: float | None
    duration_s: float


def safe_url(url: str) -> str:
    """The URL without credentials or query string (which often carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def shown_url(integration: Integration, url: str) -> str:
    """What a record shows of the URL: a Slack webhook's path is its secret."""
    if integration.type == "slack":
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "/" + MASK, "", ""))
    return safe_url(url)


def secrets_of(integration: Integration) -> list[str]:
    found = integration.secrets()
    url = integration.config.get("url")
    if url:  # a token in the URL's path (Slack's always) or query: errors quote them
        parts = urlsplit(url)
        last = parts.path.rstrip("/").rpartition("/")[2]
        found += [url, parts.query, parts.path, last if len(last) >= 8 else ""]
    return [s for s in found if s and len(s) >= 4]


def scrub(text: str | None, integration: Integration) -> str | None:
    if text is None:
        return None
    for secret in sorted(secrets_of(integration), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class Records:
    """Sends the rows to the syncer."""

    def __init__(self, syncer_inbox: Queue, clock: Clock) -> None:
        self.syncer_inbox = syncer_inbox
        self.clock = clock

    def complete(
        self,
        group: list[Delivery],
        attempt: int,
        answer: Answer | None,
        error: str | None,
        outcome: str,
    ) -> None:
        """The action runs that said "pending": now delivered, failed or not sent."""
        for d in group:
            if d.action_run_id is None:
                continue
            integration = d.integration
            url = integration.config.get("url")
            self.syncer_inbox.put(
                ActionRunRecord(
                    d.action_run_id,
                    RunId(d.event.run_id or ""),
                    "webhook",
                    d.event.trigger,
                    d.action_at or d.event.at,
                    outcome in ("delivered", "suppressed"),
                    error=None if outcome == "delivered" else scrub(error, integration),
                    details={
                        "state": outcome,
                        "url": shown_url(integration, url) if url else None,
                        "integration": integration.name or None,
                        "statusCode": answer.status if answer else None,
                        "attempts": attempt,
                        "deliveryId": d.event.key,
                    },
                )
            )

    def record(
        self,
        group: list[Delivery],
        attempt: int,
        answer: Answer | None,
        error: str | None,
        outgoing: Outgoing | None,
        outcome: str,
    ) -> None:
        now = self.clock.now()
        for d in group:
            integration = d.integration
            url = outgoing.url if outgoing else integration.config.get("url", "")
            self.syncer_inbox.put(
                WebhookDeliveryRecord(
                    id=new_row_id(),
                    run_id=RunId(d.event.run_id) if d.event.run_id else None,
                    webhook_type=integration.type,
                    trigger=d.event.trigger,
                    url=shown_url(integration, url) if url else "",
                    attempt_count=attempt,
                    status_code=answer.status if answer else None,
                    success=outcome == "delivered",
                    error=scrub(error, integration),
                    request_duration_ms=answer.duration_s * 1000 if answer else None,
                    created_at=now,
                    delivered_at=now if outcome == "delivered" else None,
                    integration=integration.name or None,
                    delivery_key=d.event.key,
                    outcome=outcome,
                    response=scrub(answer.text, integration) if answer else None,
                )
            )
