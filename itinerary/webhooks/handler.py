"""The webhook handler: delivers notifications off the orchestrators' path.

Reads `DeliverWebhook` from its inbox and sends each on its own greenlet (at
most `MAX_CONCURRENT` at once) so one slow endpoint never delays another or any
sender. Retries follow common webhook practice (protocols.md B4): 429 and 5xx
and network errors are retried with full-jitter exponential backoff, honouring
`Retry-After`; other 4xx fail at once; redirects are not followed. Every
delivery is recorded through the syncer (`WebhookDeliveryRecord`, URL without
its query string or credentials) and counted by the stats collector.

This module sends plain JSON to a URL (the "custom" integration). Named
integrations (Slack, PagerDuty, New Relic) plug in as formatters per kind.
"""

from __future__ import annotations

import logging
import random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
import gevent.pool
import requests
from gevent.queue import Queue

from itinerary.clock import Clock
from itinerary.ids import new_row_id
from itinerary.messages import (
    ActionRunRecord,
    DeliverWebhook,
    ShutDown,
    WebhookDelivered,
    WebhookDeliveryRecord,
)

log = logging.getLogger(__name__)
MAX_CONCURRENT = 20
MAX_ATTEMPTS = 5
BASE_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
TIMEOUT_S = (5.0, 15.0)  # connect, read


def safe_url(url: str) -> str:
    """The URL without credentials or query string (which often carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class WebhookHandler:
    def __init__(
        self,
        inbox: Queue,
        syncer_inbox: Queue,
        stats_inbox: Queue,
        clock: Clock,
        config: Any,
        session: requests.Session | None = None,
    ) -> None:
        self.inbox = inbox
        self.syncer_inbox = syncer_inbox
        self.stats_inbox = stats_inbox
        self.clock = clock
        self.config = config
        self.session = session or requests.Session()
        self.pool = gevent.pool.Pool(MAX_CONCURRENT)

    def run(self) -> None:
        while True:
            msg = self.inbox.get()
            if isinstance(msg, ShutDown):
                break
            self.pool.spawn(self.deliver, msg)
        # Finish what is in flight: shutdown waits for it (bounded by the app's timeout).
        self.pool.join()

    def deliver(self, msg: DeliverWebhook) -> None:
        created = self.clock.now()
        started = self.clock.monotonic()
        status, error, attempt = None, None, 0
        if not msg.url:
            error = f"no integration named {msg.integration!r} is configured"
        else:
            status, error, attempt = self._send(msg)
        ok = error is None
        duration = self.clock.monotonic() - started
        self.syncer_inbox.put(
            WebhookDeliveryRecord(
                id=new_row_id(),
                run_id=msg.run_id,
                webhook_type=msg.integration or "custom",
                trigger=msg.trigger,
                url=safe_url(msg.url or ""),
                attempt_count=attempt,
                status_code=status,
                success=ok,
                error=error,
                request_duration_ms=duration * 1000,
                created_at=created,
                delivered_at=self.clock.now() if ok else None,
            )
        )
        self.stats_inbox.put(
            WebhookDelivered(
                at=self.clock.now(),
                integration=msg.integration or "custom",
                ok=ok,
                retries=max(0, attempt - 1),
                duration_s=duration,
                inbox_length=self.inbox.qsize(),
            )
        )
        if not ok:
            log.warning("webhook for run %s failed: %s", msg.run_id, error)
        if msg.action_run_id is not None:  # the action run said "pending" until now
            self.syncer_inbox.put(
                ActionRunRecord(
                    msg.action_run_id,
                    msg.run_id or "",
                    "webhook",
                    msg.trigger,
                    msg.at,
                    ok,
                    error=error,
                    details={
                        "state": "delivered" if ok else "failed",
                        "url": safe_url(msg.url or ""),
                        "integration": msg.integration,
                        "statusCode": status,
                        "attempts": attempt,
                    },
                )
            )

    def _send(self, msg: DeliverWebhook) -> tuple[int | None, str | None, int]:
        body = {"event": msg.trigger, "runId": msg.run_id, "jobId": msg.job_id, **msg.variables}
        # A templated body is sent as rendered, JSON unless the action's headers say otherwise.
        send: dict[str, Any] = {"json": body}
        if msg.body is not None:
            send = {"data": msg.body.encode(), "headers": {"Content-Type": "application/json"}}
        send["headers"] = {**send.get("headers", {}), **msg.headers}
        status: int | None = None
        error: str | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait = None
            try:
                resp = self.session.post(msg.url, timeout=TIMEOUT_S, allow_redirects=False, **send)
                status = resp.status_code
                if 200 <= status < 300:
                    return status, None, attempt
                error = f"HTTP {status}: {resp.text[:200]}"
                if status != 429 and status < 500:
                    return status, error, attempt  # permanent: retrying will not help
                wait = _retry_after(resp.headers.get("Retry-After"))
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < MAX_ATTEMPTS:
                cap = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** (attempt - 1))
                self.clock.sleep(wait if wait is not None else random.uniform(0, cap))
        return status, error, MAX_ATTEMPTS


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None
