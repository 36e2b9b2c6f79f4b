"""What the HTTP layer and the CLI need from a running Itinerary, in one object.

Built by `itinerary.app` after start-up; routes read through `database`, send
commands through `queues` (to the scheduling loop through `commands.send`, which
reaches the leader from any replica), and never hold component objects themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gevent

from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.errors import ApiError
from itinerary.messages import Queues

REPLY_TIMEOUT_S = 10.0
# A readiness check returns (ready, reason); /readyz is 200 only when all are ready.
ReadinessCheck = Callable[[], tuple[bool, str]]


@dataclass
class Context:
    config: Config
    database: Database
    queues: Queues
    clock: Clock
    executor: Any = None  # an itinerary.executors.base.Executor
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # The metrics registry (prometheus_client.CollectorRegistry) served at /metrics.
    metrics: Any = None
    # This replica's role (itinerary/leader.py Leadership); None in tests of the API alone.
    leadership: Any = None
    # The way to the scheduling loop, wherever it runs (itinerary/commands.py CommandBus).
    commands: Any = None
    # token hash -> when this process last sent its use to the syncer (itinerary/auth.py)
    token_uses: dict[str, datetime] = field(default_factory=dict)


def wait_reply(result: Any, what: str) -> Any:
    """The value of a component's reply, or 503 when it does not answer in time."""
    try:
        return result.get(timeout=REPLY_TIMEOUT_S)
    except gevent.Timeout:
        raise ApiError(503, f"{what} did not answer within {REPLY_TIMEOUT_S:g}s") from None
