"""Sending one delivery: attempts, retries, broken marks, stats.

`Attempts.deliver` makes up to MAX_ATTEMPTS attempts of one request (one message,
or one New Relic batch standing for several), each within a global slot, after
the destination's rate limit allows it. Every attempt is recorded (records.py)
and every delivery is one `WebhookDelivered` for the stats. Anything logged is
first scrubbed of the integration's secrets (a Slack URL in a connection error,
a key echoed in an answer).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import requests
from gevent import GreenletExit
from gevent.event import Event as Flag
from gevent.queue import Queue

from itinerary.clock import Clock
from itinerary.messages import (
    DeliverWebhook,
    MarkIntegration,
    WebhookDelivered,
)
from itinerary.templating import TemplateError
from itinerary.webhooks import custom, newrelic, pagerduty, slack, ssrf
from itinerary.webhooks.base import Event, Outgoing, Verdict
from itinerary.webhooks.integrations import Integration
from itinerary.webhooks.records import Answer, Delivery, Records, scrub
from itinerary.webhooks.slots import FairSlots, Holder

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
BASE_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
MAX_RETRY_AFTER_S = 300.0
TIMEOUT_S = (5.0, 15.0)  # connect, read
RESPONSE_KEEP = 500  # characters of an answer kept on the delivery row
FORMATTERS: dict[str, Any] = {
    "slack": slack,
    "pagerduty": pagerduty,
    "newrelic": newrelic,
    "custom": custom,
}


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


class Attempts:
    """Makes and records attempts; shared by every destination's workers."""

    def __init__(
        self,
        syncer_inbox: Queue,
        stats_inbox: Queue,
        clock: Clock,
        session: requests.Session,
        slots: FairSlots,
        stop_flag: Flag,
        *,
        deny_private: bool,
        inbox_length: Callable[[], int],
    ) -> None:
        self.syncer_inbox = syncer_inbox
        self.stats_inbox = stats_inbox
        self.clock = clock
        self.session = session
        self.slots = slots
        self.stop_flag = stop_flag
        self.deny_private = deny_private
        # Custom URLs, when private addresses are refused: the connection is checked too.
        self.guarded = ssrf.guarded_session(slots.size) if deny_private else session
        self.inbox_length = inbox_length
        self.records = Records(syncer_inbox, clock)
        self.broken: dict[str, str] = {}  # integration name -> why (until edited or tested)

    # --- the attempt loop -------------------------------------------------------------------

    def deliver(
        self,
        group: list[Delivery],
        bucket: Any,
        outgoing: Outgoing | None = None,
        holder: Holder | None = None,
    ) -> None:
        first = group[0]
        integration = first.integration
        started = time.perf_counter()
        try:
            if outgoing is None:
                outgoing = self._build(first)
        except TemplateError as exc:
            self._final(group, 0, None, f"template error: {exc}", None, "failed", started)
            return
        refused = self._refusal(integration, outgoing)
        if refused:
            self._final(group, 0, None, refused, None, "failed", started)
            return
        attempt = 0
        try:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                if not bucket.acquire(self.stop_flag):
                    reason = (
                        f"shut down while waiting to retry ({attempt - 1} attempts made)"
                        if attempt > 1
                        else "shut down before it was sent (waiting for the rate limit)"
                    )
                    self._final(group, attempt - 1, None, reason, None, "not_delivered", started)
                    return
                answer = self.send(outgoing, holder, guarded=integration.type == "custom")
                verdict = FORMATTERS[integration.type].classify(
                    answer.status, answer.text, answer.retry_after
                )
                if answer.error and ssrf.TAG in answer.error:  # permanent, whatever the cause
                    verdict = Verdict(False)
                if verdict.ok:
                    self._final(group, attempt, answer, None, outgoing, "delivered", started)
                    return
                error = self._error(answer)
                if verdict.broken:
                    self._mark_broken(integration, verdict.broken)
                last = attempt == MAX_ATTEMPTS or not verdict.retry or verdict.broken
                if last:
                    self._final(group, attempt, answer, error, outgoing, "failed", started)
                    return
                self.records.record(group, attempt, answer, error, outgoing, "retrying")
                wait = self._backoff(attempt, verdict)
                if answer.status == 429 and verdict.retry_after is not None:
                    bucket.pause(verdict.retry_after)
                if self.clock.wait(self.stop_flag, wait):
                    reason = f"shut down while waiting to retry ({attempt} attempts made)"
                    self._final(group, attempt, None, reason, None, "not_delivered", started)
                    return
        except GreenletExit:  # killed at the end of shutdown: still recorded, then re-raised
            reason = f"shut down during attempt {attempt or 1} (shutdown timeout reached)"
            self._final(group, attempt, None, reason, None, "not_delivered", started)
            raise
        except Exception as exc:  # a bug of ours: this delivery fails, the worker goes on
            log.exception("webhook delivery failed unexpectedly")
            reason = f"internal error: {type(exc).__name__}; see the server log"
            self._final(group, attempt, None, reason, None, "failed", started)

    def _backoff(self, attempt: int, verdict: Verdict) -> float:
        if verdict.retry_after is not None:
            return verdict.retry_after
        return random.uniform(0, min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** (attempt - 1)))

    def _build(self, delivery: Delivery) -> Outgoing:
        fmt = FORMATTERS[delivery.integration.type]
        if delivery.integration.type == "custom":
            return custom.build(
                delivery.integration,
                delivery.event,
                delivery.template,
                body=delivery.body,
                headers=delivery.headers,
            )
        return fmt.build(delivery.integration, delivery.event)

    def _refusal(self, integration: Integration, outgoing: Outgoing) -> str | None:
        if integration.name and integration.name in self.broken:
            return (
                f"integration {integration.name!r} is broken ({self.broken[integration.name]}); "
                "edit it or test it green"
            )
        if self.deny_private and integration.type == "custom":
            return ssrf.check_url(outgoing.url)
        return None

    def send(
        self, outgoing: Outgoing, holder: Holder | None = None, *, guarded: bool = False
    ) -> Answer:
        """One HTTP request within a global slot; never raises for the receiver's failures."""
        holder = holder or Holder()
        self.slots.acquire(holder)
        try:
            return self._request(outgoing, self.guarded if guarded else self.session)
        finally:
            self.slots.release(holder)

    def _request(self, outgoing: Outgoing, session: requests.Session) -> Answer:
        started = time.perf_counter()
        try:
            resp = session.request(
                outgoing.method,
                outgoing.url,
                data=outgoing.body,
                headers=outgoing.headers,
                timeout=TIMEOUT_S,
                allow_redirects=False,
            )
            text = resp.text[:RESPONSE_KEEP]
            retry = _retry_after(resp.headers.get("Retry-After"))
            return Answer(resp.status_code, text, None, retry, time.perf_counter() - started)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
            return Answer(None, "", error, None, time.perf_counter() - started)

    def _error(self, answer: Answer) -> str:
        if answer.status is None:
            return answer.error or "no answer"
        return f"HTTP {answer.status}: {answer.text[:200]}"

    # --- test, refuse, suppress ---------------------------------------------------------------

    def test(self, integration: Integration, event: Event) -> dict[str, Any]:
        """One attempt of a test message; the answer, scrubbed. Green clears a broken mark."""
        started = time.perf_counter()
        delivery = Delivery(integration, event)
        try:
            outgoing = self._build(delivery)
        except TemplateError as exc:
            error: str | None = f"template error: {exc}"
            self._final([delivery], 0, None, error, None, "failed", started, count=False)
            return {"ok": False, "statusCode": None, "response": None, "error": error}
        refused = None
        if self.deny_private and integration.type == "custom":
            refused = ssrf.check_url(outgoing.url)
        if refused:
            self._final([delivery], 0, None, refused, None, "failed", started, count=False)
            return {"ok": False, "statusCode": None, "response": None, "error": refused}
        answer = self.send(outgoing, guarded=integration.type == "custom")
        verdict = FORMATTERS[integration.type].classify(answer.status, answer.text, None)
        error = None if verdict.ok else self._error(answer)
        outcome = "delivered" if verdict.ok else "failed"
        self._final([delivery], 1, answer, error, outgoing, outcome, started, count=False)
        if verdict.ok and (integration.broken_reason or integration.name in self.broken):
            self._mark_broken(integration, None)
        elif verdict.broken:
            self._mark_broken(integration, verdict.broken)
        if verdict.ok and integration.type == "pagerduty":  # leave no test incident open
            closing = Delivery(integration, replace(event, kind="recovery"))
            request = self._build(closing)
            closed = self.send(request)
            done = pagerduty.classify(closed.status, closed.text, None).ok
            error = None if done else self._error(closed)
            outcome = "delivered" if done else "failed"
            self._final([closing], 1, closed, error, request, outcome, started, count=False)
        return {
            "ok": verdict.ok,
            "statusCode": answer.status,
            "response": scrub(answer.text, integration),
            "error": scrub(error, integration),
            "durationMs": round(answer.duration_s * 1000, 1),
        }

    def refuse(self, msg: DeliverWebhook, event: Event, reason: str) -> None:
        target = Integration(name=msg.integration or "", type="custom", config={})
        delivery = Delivery(target, event, action_run_id=msg.action_run_id, action_at=msg.at)
        self._final([delivery], 0, None, reason, None, "failed", time.perf_counter())

    def suppressed(self, delivery: Delivery, reason: str) -> None:
        self.records.record([delivery], 0, None, f"not sent: {reason}", None, "suppressed")
        self.records.complete([delivery], 0, None, f"not sent: {reason}", "suppressed")

    def not_delivered(self, delivery: Delivery, reason: str) -> None:
        self._final([delivery], 0, None, reason, None, "not_delivered", time.perf_counter())

    def _mark_broken(self, integration: Integration, reason: str | None) -> None:
        if not integration.name:
            return
        if reason is None:
            self.broken.pop(integration.name, None)
            log.info("integration %s works again", integration.name)
        else:
            self.broken[integration.name] = reason
            log.warning("integration %s is broken: %s", integration.name, reason)
        self.syncer_inbox.put(MarkIntegration(integration.name, reason, self.clock.now()))

    def forget_broken(self, name: str) -> None:
        """An edit clears the broken mark (the syncer cleared the row already)."""
        self.broken.pop(name, None)

    # --- records ------------------------------------------------------------------------------

    def _final(
        self,
        group: list[Delivery],
        attempt: int,
        answer: Answer | None,
        error: str | None,
        outgoing: Outgoing | None,
        outcome: str,
        started: float,
        count: bool = True,
    ) -> None:
        self.records.record(group, attempt, answer, error, outgoing, outcome)
        self.records.complete(group, attempt, answer, error, outcome)
        if not count:
            return
        ok = outcome == "delivered"
        duration = time.perf_counter() - started
        for d in group:
            self.stats_inbox.put(
                WebhookDelivered(
                    at=self.clock.now(),
                    integration=d.integration.type,
                    ok=ok,
                    retries=max(0, attempt - 1),
                    duration_s=duration,
                    inbox_length=self.inbox_length(),
                )
            )
        if not ok:
            first = group[0]
            log.warning(
                "webhook %s for run %s not delivered (%s): %s",
                first.integration.name or "inline URL",
                first.event.run_id,
                outcome,
                scrub(error, first.integration),
            )
