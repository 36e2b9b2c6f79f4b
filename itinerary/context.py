"""What the HTTP layer and the CLI need from a running Itinerary, in one object.

Built by `itinerary.app` after start-up; routes read through `database`, send
commands through `queues`, and never hold component objects themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from itinerary.clock import Clock
from itinerary.db import Database
from itinerary.messages import Queues

# A readiness check returns (ready, reason); /readyz is 200 only when all are ready.
ReadinessCheck = Callable[[], tuple[bool, str]]


@dataclass
class Context:
    config: Any  # itinerary.config.Config
    database: Database
    queues: Queues
    clock: Clock
    executor: Any = None  # an itinerary.executors.base.Executor
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # The metrics registry (prometheus_client.CollectorRegistry) served at /metrics.
    metrics: Any = None
    # token hash -> when this process last sent its use to the syncer (itinerary/auth.py)
    token_uses: dict[str, datetime] = field(default_factory=dict)
