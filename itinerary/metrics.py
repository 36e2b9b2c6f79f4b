"""Prometheus metrics for `GET /metrics`, all named `itinerary_*`.

The stats collector owns a `Metrics` (in its own `CollectorRegistry`, so tests and
two apps in one process never collide) and updates it from the messages in its
inbox; inbox lengths are read on scrape from a `qsize` callable per component.
`render(registry)` is what the HTTP layer serves.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Start lateness: a healthy run starts within milliseconds; minutes mean trouble.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Loop iterations and flushes: sub-millisecond normally, seconds when something blocks.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """Every metric Itinerary exports, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runs = Counter(
            "itinerary_runs",
            "Runs that reached a final state, by job and state",
            ["job", "state"],
            registry=registry,
        )
        self.start_lateness = Histogram(
            "itinerary_run_start_lateness_seconds",
            "How long after its scheduled time a run started",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.loop_iteration = Histogram(
            "itinerary_loop_iteration_seconds",
            "Duration of one scheduler loop iteration",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.inbox_length = Gauge(
            "itinerary_inbox_length",
            "Messages waiting in a component's inbox",
            ["component"],
            registry=registry,
        )
        self.syncer_queued = Gauge(
            "itinerary_syncer_queued_writes",
            "Messages the syncer has accepted and not yet written",
            registry=registry,
        )
        self.syncer_flush = Histogram(
            "itinerary_syncer_flush_seconds",
            "Duration of a syncer flush (one transaction), by kind of row",
            ["kind"],
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.syncer_writes = Counter(
            "itinerary_syncer_writes",
            "Rows the syncer wrote (ok) or failed to write (error), by kind",
            ["kind", "result"],
            registry=registry,
        )
        self.webhooks = Counter(
            "itinerary_webhook_deliveries",
            "Webhook deliveries by integration and result",
            ["integration", "result"],
            registry=registry,
        )
        self.database_errors = Counter(
            "itinerary_database_errors",
            "Database errors seen, by component",
            ["component"],
            registry=registry,
        )

        self.anomalies = Counter(
            "itinerary_anomalies",
            "Anomalies found (unusual runs, silent slots), by kind",
            ["kind"],
            registry=registry,
        )

    def watch_inbox(self, component: str, qsize: Callable[[], int]) -> None:
        """Report `component`'s inbox length, read from `qsize()` at every scrape."""
        self.inbox_length.labels(component).set_function(qsize)


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The body and content type for `GET /metrics`."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
