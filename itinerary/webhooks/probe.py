"""`POST /integrations/{name}/test` and `integration test`: one test message, its answer.

The test is sent by the caller (the API request's greenlet, or the CLI), not
queued behind real deliveries, so the answer comes back at once: the service's
status and text, or the template error or refusal, scrubbed of secrets. A green
test clears the integration's broken mark; a permanent error sets it. The
attempt is recorded like any other (trigger `test`).
"""

from __future__ import annotations

from typing import Any

from gevent.event import Event as Flag
from gevent.queue import Queue

from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.webhooks.base import Event
from itinerary.webhooks.delivery import Attempts
from itinerary.webhooks.handler import new_key, new_session
from itinerary.webhooks.integrations import Integration
from itinerary.webhooks.slots import FairSlots

_session = None


def variables(config: Config) -> dict[str, Any]:
    return {
        "cluster": getattr(config, "cluster_name", "default"),
        "jobName": "itinerary-test",
        "jobNamespace": "default",
        "jobCommand": "",
        "jobArgs": "",
        "runID": None,
        "status": "test",
        "error": None,
        "slot": None,
        "attempt": 1,
        "duration": None,
        "runURL": None,
    }


def send_test(
    integration: Integration, config: Config, syncer_inbox: Queue, stats_inbox: Queue, clock: Clock
) -> dict[str, Any]:
    global _session
    if _session is None:
        _session = new_session(4)
    attempts = Attempts(
        syncer_inbox,
        stats_inbox,
        clock,
        _session,
        FairSlots(1),
        Flag(),
        deny_private=bool(getattr(config, "webhook_deny_private", False)),
        inbox_length=lambda: 0,
    )
    event = Event("test", "test", None, None, variables(config), clock.now(), new_key())
    return attempts.test(integration, event)
