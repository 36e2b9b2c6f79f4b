"""A running WebhookHandler on the fake clock, fed integrations from a dict, for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import gevent
import pytest
from gevent.queue import Empty, Queue

from itinerary import config as cfg
from itinerary.clock import FakeClock, settle
from itinerary.messages import DeliverWebhook, ShutDown, WebhookDelivered, WebhookDeliveryRecord
from itinerary.webhooks.handler import WebhookHandler
from itinerary.webhooks.integrations import Integration

FINAL = ("delivered", "failed", "not_delivered", "suppressed")


@dataclass
class Hub:
    handler: WebhookHandler
    clock: FakeClock
    integrations: dict[str, Integration]
    worker: gevent.Greenlet
    records: list[WebhookDeliveryRecord] = field(default_factory=list)
    stats: list[WebhookDelivered] = field(default_factory=list)
    others: list[Any] = field(default_factory=list)

    def add(self, name: str, kind: str, **config: Any) -> Integration:
        self.integrations[name] = Integration(name=name, type=kind, config=config)
        return self.integrations[name]

    def send(self, integration: str | None = None, url: str | None = None, **kw: Any) -> None:
        variables = {
            "cluster": "prod",
            "jobName": kw.pop("job_name", "nightly-report"),
            "jobNamespace": "default",
            "jobCommand": "report",
            "jobArgs": "",
            "runID": kw.get("run_id", "rrun1"),
            "status": kw.pop("status", "failed"),
            "error": kw.pop("error", "exit code 3"),
            "slot": "2026-03-01T13:00:00+01:00",
            "attempt": 1,
            "duration": 12.5,
            "runURL": "https://itinerary.example.com/runs/" + kw.get("run_id", "rrun1"),
            **kw.pop("variables", {}),
        }
        self.handler.inbox.put(
            DeliverWebhook(
                integration,
                url,
                kw.pop("trigger", "on_failure"),
                kw.pop("run_id", "rrun1"),
                kw.pop("job_id", 7),
                variables,
                self.clock.now(),
                kw.pop("template", None),
                **kw,
            )
        )
        settle()

    def drain(self) -> None:
        while True:
            try:
                msg = self.handler.attempts.syncer_inbox.get_nowait()
            except Empty:
                break
            target = self.records if isinstance(msg, WebhookDeliveryRecord) else self.others
            target.append(msg)
        while True:
            try:
                self.stats.append(self.handler.attempts.stats_inbox.get_nowait())
            except Empty:
                break

    def finals(self, count: int, advance: float = 1.0, timeout: float = 10.0) -> list[Any]:
        """Wait (advancing the fake clock) until `count` deliveries have ended."""
        with gevent.Timeout(timeout):
            while True:
                self.drain()
                done = [r for r in self.records if r.outcome in FINAL]
                if len(done) >= count:
                    return done
                self.clock.advance(advance)
                gevent.sleep(0.01)


def start_hub(clock: FakeClock, **settings: Any) -> Hub:
    config = replace(cfg.load(None, {}), **settings)
    integrations: dict[str, Integration] = {}
    handler = WebhookHandler(Queue(), Queue(), Queue(), clock, config, lookup=integrations.get)
    return Hub(handler, clock, integrations, gevent.spawn(handler.run))


@pytest.fixture
def hub(clock: FakeClock) -> Iterator[Hub]:
    h = start_hub(clock)
    yield h
    h.handler.inbox.put(ShutDown())
    h.worker.join(timeout=5)
