"""/metrics: Prometheus text from the stats collector's registry."""

from __future__ import annotations

from datetime import UTC, datetime

from gevent.queue import Queue
from prometheus_client.parser import text_string_to_metric_families

from itinerary import config as configmod
from itinerary import messages
from itinerary.clock import FakeClock
from itinerary.metrics import render
from itinerary.stats import StatsCollector

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def samples(registry):
    body, _ = render(registry)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_it_exports_what_the_collector_saw(clock: FakeClock):
    collector = StatsCollector(Queue(), Queue(), clock, configmod.load(None, {}))
    syncer_inbox = Queue()
    syncer_inbox.put("waiting")
    collector.watch_inbox("syncer", syncer_inbox.qsize)
    collector.handle(messages.RunCompleted("r1", 1, "nightly", "failed", T0, 3.0, 0, 0))
    collector.handle(messages.RunStartLateness("r1", 1, T0, 0.2))
    collector.handle(messages.WebhookDelivered(T0, "slack", False, 2, 0.3, 0))
    collector.handle(messages.DatabaseError(T0, "syncer", "connection refused"))
    collector.handle(messages.SyncerFlushed(T0, "runs", 40, True, 0.004, 7, 0, 40, (0.1,), (0.0,)))
    got = samples(collector.registry)
    assert got[("itinerary_runs_total", (("job", "nightly"), ("state", "failed")))] == 1
    assert got[("itinerary_run_start_lateness_seconds_bucket", (("le", "0.25"),))] == 1
    assert got[("itinerary_run_start_lateness_seconds_bucket", (("le", "0.1"),))] == 0
    assert got[("itinerary_inbox_length", (("component", "syncer"),))] == 1
    assert (
        got[
            ("itinerary_webhook_deliveries_total", (("integration", "slack"), ("result", "failed")))
        ]
        == 1
    )
    assert got[("itinerary_database_errors_total", (("component", "syncer"),))] == 1
    assert got[("itinerary_syncer_queued_writes", ())] == 7
    assert got[("itinerary_syncer_writes_total", (("kind", "runs"), ("result", "ok")))] == 40
    assert got[("itinerary_syncer_flush_seconds_count", (("kind", "runs"),))] == 1


def test_it_serves_the_prometheus_content_type(clock: FakeClock):
    collector = StatsCollector(Queue(), Queue(), clock, configmod.load(None, {}))
    body, content_type = render(collector.registry)
    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE itinerary_loop_iteration_seconds histogram" in body


def test_it_keeps_registries_apart(clock: FakeClock):
    # Two collectors in one process (tests, or two apps) must not clash on metric names.
    config = configmod.load(None, {})
    first = StatsCollector(Queue(), Queue(), clock, config)
    StatsCollector(Queue(), Queue(), clock, config)
    first.handle(messages.RunCompleted("r", 1, "j", "succeeded", T0, None, 0, 0))
    assert (
        samples(first.registry)[("itinerary_runs_total", (("job", "j"), ("state", "succeeded")))]
        == 1
    )
