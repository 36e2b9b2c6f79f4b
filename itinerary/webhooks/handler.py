"""The webhook handler: delivers notifications off every other component's path.

Reads its inbox (`DeliverWebhook`, `TestIntegration`, `IntegrationsChanged`) and
never sends from the inbox loop itself. Each message is resolved to its
integration (or the action's inline URL), passed through the action's alert
policy (itinerary/alertpolicy.py), formatted for its service and queued on its *destination*:
one queue per integration or URL, each with its own workers and rate limit
(ratelimit.py), so a slow or dead receiver only ever delays itself. A global
bound on requests in flight (`--webhook-concurrency`, slots.py) is shared
fairly, one slot always left to the other destinations; waiting for a retry or
a rate limit holds no slot.

Attempts (delivery.py) are retried with full-jitter backoff on 429/5xx/timeouts
and connection errors, honouring `Retry-After`, never on other 4xx; a service's
permanent error marks the integration broken (through the syncer) until it is
edited or tested green. Every attempt becomes a `webhook_deliveries` row and
every delivery a `WebhookDelivered` for the stats. At shutdown, requests in
flight finish within the shutdown timeout; everything else is recorded as not
delivered, with the reason.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.pool
import requests
from gevent.event import Event as Flag
from gevent.queue import Queue

from itinerary import alertpolicy as policy
from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.inbox import serve
from itinerary.messages import (
    DeliverWebhook,
    IntegrationsChanged,
)
from itinerary.webhooks import base, newrelic
from itinerary.webhooks.delivery import Attempts
from itinerary.webhooks.integrations import Integration
from itinerary.webhooks.ratelimit import Bucket
from itinerary.webhooks.records import Delivery, safe_url
from itinerary.webhooks.slots import FairSlots, Holder

__all__ = ["WebhookHandler", "new_key", "new_session", "safe_url"]
log = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 20
SHUTDOWN_MARGIN_S = 1.0  # leave the app this long, within its timeout, to flush records
CACHE_S = 30.0  # how long an integration read from the database is used before a re-read

Lookup = Callable[[str], Integration | None]


@dataclass
class Destination:
    """One receiver: its queue, its rate limit, how many workers it may have."""

    key: str
    bucket: Bucket
    limit: int
    batched: bool = False
    queue: deque[Delivery] = field(default_factory=deque)
    workers: int = 0
    holder: Holder = field(default_factory=Holder)  # its requests in flight (slots.py)


class WebhookHandler:
    def __init__(
        self,
        inbox: Queue,
        syncer_inbox: Queue,
        stats_inbox: Queue,
        clock: Clock,
        config: Config,
        session: requests.Session | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        self.inbox = inbox
        self.clock = clock
        self.config = config
        self.concurrency = int(getattr(config, "webhook_concurrency", DEFAULT_CONCURRENCY))
        self.stop_flag = Flag()
        self.attempts = Attempts(
            syncer_inbox,
            stats_inbox,
            clock,
            session or new_session(self.concurrency),
            FairSlots(self.concurrency),
            self.stop_flag,
            deny_private=bool(getattr(config, "webhook_deny_private", False)),
            inbox_length=inbox.qsize,
        )
        self.lookup = lookup or (lambda name: None)
        # name -> (integration, when read): API edits evict at once (IntegrationsChanged),
        # the CLI's after CACHE_S at most.
        self.cache: dict[str, tuple[Integration | None, float]] = {}
        self.destinations: dict[str, Destination] = {}
        self.tracker = policy.Tracker()
        self.workers = gevent.pool.Group()

    # --- the inbox loop (never sends, never sleeps) -----------------------------------------

    def run(self) -> None:
        try:
            serve(self.inbox, self.handle)
        finally:
            self.shut_down()

    def handle(self, msg: Any) -> None:
        if isinstance(msg, IntegrationsChanged):  # edited or deleted: not broken any more
            self.cache.pop(msg.name, None)
            self.attempts.forget_broken(msg.name)
            dest = self.destinations.get(f"integration:{msg.name}")
            if dest is not None and not dest.queue:
                del self.destinations[f"integration:{msg.name}"]
        elif isinstance(msg, DeliverWebhook):
            self.submit(msg)

    def integration(self, name: str) -> Integration | None:
        now = self.clock.monotonic()
        cached = self.cache.get(name)
        if cached is not None and now - cached[1] < CACHE_S:
            return cached[0]
        found = self.lookup(name)
        self.cache[name] = (found, now)
        if found is not None and found.broken_reason:
            self.attempts.broken[name] = found.broken_reason
        elif found is not None and cached is not None:  # cleared elsewhere (the CLI)
            self.attempts.forget_broken(name)
        return found

    def submit(self, msg: DeliverWebhook) -> None:
        """Resolve, apply the alert policy, format and queue one message."""
        target = self._target(msg)
        event = base.Event(
            msg.kind,
            msg.trigger,
            msg.run_id,
            msg.job_id,
            msg.variables,
            self.clock.now(),
            new_key(),
        )
        if isinstance(target, str):
            self.attempts.refuse(msg, event, target)
            return
        try:
            rule = policy.parse(msg.policy)
        except ValueError:  # checked when the job was saved; an older definition alerts always
            rule = policy.Policy()
        if msg.kind == "recovery" and not (target.type == "pagerduty" or rule.recovery):
            self.tracker.decide((msg.job_id, _dest_key(target)), "recovery", None, rule, event.at)
            return
        if msg.kind == "recovery" and target.type == "newrelic":
            return  # New Relic records runs as they finish; a recovery is not one
        if msg.kind != "alert" or msg.trigger == "on_failure":
            verdict = self.tracker.decide(
                (msg.job_id, _dest_key(target)),
                msg.kind,
                msg.run_id,
                rule,
                event.at,
                resolve_unknown=target.type == "pagerduty",
            )
            if not verdict.send:
                if msg.kind != "recovery":
                    self.attempts.suppressed(_delivery(msg, target, event), verdict.reason)
                return
        self.enqueue(_delivery(msg, target, event))

    def _target(self, msg: DeliverWebhook) -> Integration | str:
        """The integration to send to, or the reason there is none."""
        if msg.integration:
            try:
                found = self.integration(msg.integration)
            except Exception as exc:  # the database: this delivery fails, the handler goes on
                log.warning("cannot read integration %r: %s", msg.integration, exc)
                return f"cannot read integration {msg.integration!r}: {type(exc).__name__}"
            if found is None:
                return f"no integration named {msg.integration!r} is configured"
            return found
        if not msg.url:
            return "the webhook action names neither an integration nor a URL"
        return Integration(name="", type="custom", config={"url": msg.url})

    def enqueue(self, delivery: Delivery) -> None:
        if self.stop_flag.is_set():
            self.attempts.not_delivered(delivery, "shut down before it was sent")
            return
        key = _dest_key(delivery.integration)
        dest = self.destinations.get(key)
        if dest is None:
            kind = delivery.integration.type
            serial = kind in ("slack", "pagerduty", "newrelic")  # ordered: trigger, then resolve
            dest = Destination(
                key,
                Bucket(self.clock, delivery.integration.rate_limit),
                1 if serial else max(1, self.concurrency - 1),
                batched=kind == "newrelic",
            )
            self.destinations[key] = dest
        dest.queue.append(delivery)
        if dest.workers < dest.limit:
            dest.workers += 1
            self.workers.spawn(self._work, dest)

    # --- workers ----------------------------------------------------------------------------

    def _work(self, dest: Destination) -> None:
        try:
            while dest.queue and not self.stop_flag.is_set():
                if dest.batched:  # New Relic: what queued meanwhile goes in one POST or a few
                    taken = [
                        dest.queue.popleft() for _ in range(min(newrelic.TAKE, len(dest.queue)))
                    ]
                    for outgoing, members in newrelic.batches(
                        taken[0].integration, [d.event for d in taken]
                    ):
                        chosen = [taken[n] for n in members]
                        self.attempts.deliver(chosen, dest.bucket, outgoing, dest.holder)
                else:
                    delivery = dest.queue.popleft()
                    self.attempts.deliver([delivery], dest.bucket, holder=dest.holder)
        finally:
            dest.workers -= 1

    # --- shutdown ---------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Finish requests in flight (within the shutdown timeout); record the rest."""
        self.stop_flag.set()
        for dest in self.destinations.values():
            while dest.queue:
                self.attempts.not_delivered(dest.queue.popleft(), "shut down before it was sent")
        timeout = float(getattr(self.config, "shutdown_timeout", 30.0))
        self.workers.join(timeout=max(0.1, timeout - SHUTDOWN_MARGIN_S))
        self.workers.kill(timeout=1)  # a killed attempt records itself as not delivered


def _delivery(msg: DeliverWebhook, target: Integration, event: base.Event) -> Delivery:
    return Delivery(
        target,
        event,
        msg.template,
        body=msg.body,
        headers=dict(msg.headers),
        action_run_id=msg.action_run_id,
        action_at=msg.at,
    )


def _dest_key(integration: Integration) -> str:
    if integration.name:
        return f"integration:{integration.name}"
    return "url:" + safe_url(integration.config["url"])


def new_key() -> str:
    """A delivery's id: the Standard Webhooks `webhook-id`, the same on every attempt."""
    return "msg_" + secrets.token_hex(12)


def new_session(concurrency: int) -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=64, pool_maxsize=max(10, concurrency), max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
