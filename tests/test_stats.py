"""The stats collector: per-period aggregation, rollover, and rows through the syncer."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import gevent
from gevent.queue import Queue

from itinerary import config as configmod
from itinerary import messages
from itinerary.clock import FakeClock
from itinerary.db import Database
from itinerary.models import OrchestratorStats, SchedulerStats, SyncerStats
from itinerary.stats import StatsCollector
from itinerary.syncer import Syncer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PERIOD_ID = int(T0.timestamp())


def make(clock, period=60.0):
    config = dataclasses.replace(configmod.load(None, {}), stats_period=period)
    out = Queue()
    return StatsCollector(Queue(), out, clock, config), out


def loop(at, inbox_length, waits=(), late_by=()):
    return messages.LoopIteration(
        at=at,
        duration_s=0.002,
        inbox_length=inbox_length,
        messages=len(waits),
        time_in_inbox_s=tuple(waits),
        launched=2,
        late_by_s=tuple(late_by),
        missed_by_s=(2.0,),
        cancelled=0,
        active_runs=3,
    )


def flushed(at, ok, rows, queued, waits):
    return messages.SyncerFlushed(
        at=at,
        kind="runs",
        rows=rows,
        ok=ok,
        duration_s=0.01,
        queued=queued,
        inbox_length=queued * 2,
        in_flight=rows,
        time_in_queue_s=tuple(waits),
        time_in_inbox_s=(),
    )


def drain(queue):
    out = {}
    while not queue.empty():
        msg = queue.get()
        out.setdefault(msg.table, []).extend(msg.rows)
    return out


def test_it_rolls_scheduler_stats_over_with_min_avg_max(clock: FakeClock):
    collector, out = make(clock)
    g = gevent.spawn(collector.run)
    for length, waits in ((2, (0.001, 0.003)), (4, ()), (9, (0.002,))):
        collector.inbox.put(loop(clock.now(), length, waits, late_by=(0.5,)))
    clock.advance(59)
    assert out.empty()
    clock.advance(1)
    # It should send one row for the finished period when the clock crosses its end.
    row = drain(out)["scheduler_stats"][0]
    assert row["stats_period_id"] == PERIOD_ID and row["iterations"] == 3
    assert (row["min_inbox_length"], row["avg_inbox_length"], row["max_inbox_length"]) == (2, 5, 9)
    assert row["min_time_in_inbox"] == 1.0 and row["max_time_in_inbox"] == 3.0
    assert abs(row["avg_time_in_inbox"] - 2.0) < 1e-9
    assert (row["run_jobs"], row["late_jobs"], row["missed_jobs"]) == (6, 3, 3)
    assert row["time_passed_run_time"] == 1500.0
    assert row["time_passed_grace_period"] == 6000.0
    collector.inbox.put(loop(clock.now(), 7))
    collector.inbox.put(messages.ShutDown())
    g.join(timeout=5)
    # It should send the period under way on shutdown, with its own figures only.
    row = drain(out)["scheduler_stats"][0]
    assert row["stats_period_id"] == PERIOD_ID + 60 and row["max_inbox_length"] == 7
    assert row["iterations"] == 1


def test_it_counts_syncer_writes_and_failures(clock: FakeClock):
    collector, out = make(clock)
    collector.handle(flushed(T0, True, 500, 10, (0.1, 0.3)))
    collector.handle(flushed(T0, False, 20, 30, (0.2,)))
    row = collector.period.rows()["syncer_stats"][0]
    assert (row["total_writes"], row["writes_succeeded"], row["writes_failed"]) == (520, 500, 20)
    assert (row["min_queued_writes"], row["avg_queued_writes"], row["max_queued_writes"]) == (
        10,
        20,
        30,
    )
    assert row["min_time_in_write_queue"] == 100 and row["max_time_in_write_queue"] == 300


def test_it_sums_webhook_deliveries(clock: FakeClock):
    collector, _ = make(clock)
    for ok, retries, seconds in ((True, 0, 0.1), (False, 3, 0.5)):
        collector.handle(messages.WebhookDelivered(T0, "slack", ok, retries, seconds, 4))
    row = collector.period.rows()["webhook_handler_stats"][0]
    assert (row["webhooks_sent"], row["webhooks_succeeded"], row["webhooks_failed"]) == (2, 1, 1)
    assert row["total_retries"] == 3
    assert (row["min_delivery_time"], row["max_delivery_time"]) == (100, 500)
    assert abs(row["avg_delivery_time"] - 300) < 1e-9


def test_it_starts_a_new_period_when_a_message_is_from_a_later_one(clock: FakeClock):
    collector, out = make(clock, period=10.0)
    collector.handle(loop(T0, 1))
    collector.handle(loop(T0 + timedelta(seconds=25), 5))
    # It should close the first period at once; the empty one between writes no row.
    rows = drain(out)["scheduler_stats"]
    assert [r["stats_period_id"] for r in rows] == [PERIOD_ID]
    assert collector.period.bounds()["stats_period_id"] == PERIOD_ID + 20


def test_it_writes_its_rows_through_the_syncer(database: Database, clock: FakeClock):
    config = configmod.load(None, {})
    syncer_inbox, stats_inbox = Queue(), Queue()
    syncer = Syncer(syncer_inbox, database, clock, stats_inbox, config)
    collector = StatsCollector(stats_inbox, syncer_inbox, clock, config)
    g_syncer, g_stats = gevent.spawn(syncer.run), gevent.spawn(collector.run)
    stats_inbox.put(loop(clock.now(), 3, (0.004,)))
    stats_inbox.put(messages.RunCompleted("rdone", 1, "job", "succeeded", clock.now(), 12.5, 2, 1))
    stats_inbox.put(messages.ShutDown())
    g_stats.join(timeout=5)
    done = messages.Flush(clock.now())
    syncer_inbox.put(done)
    done.reply.get(timeout=10)
    row = database.read(lambda: SchedulerStats.get_by_id(PERIOD_ID))
    assert (row.iterations, row.max_inbox_length, row.max_time_in_inbox) == (1, 3, 4.0)
    orch = database.read(lambda: OrchestratorStats.get(OrchestratorStats.run_id == "rdone"))
    assert (orch.runtime, orch.constraints_checked, orch.actions_taken) == (12500.0, 2, 1)
    # The syncer's own flushes were counted by the collector too (not yet written).
    assert database.read(lambda: SyncerStats.select().count()) == 0
    syncer_inbox.put(messages.ShutDown())
    g_syncer.join(timeout=10)


def test_it_upserts_a_period_written_twice(database: Database, clock: FakeClock):
    config = configmod.load(None, {})
    syncer_inbox = Queue()
    syncer = Syncer(syncer_inbox, database, clock, None, config)
    g = gevent.spawn(syncer.run)
    collector, out = make(clock)
    for length in (3, 8):  # the same period sent twice: the later figures win
        collector.handle(loop(T0, length))
        syncer_inbox.put(
            messages.StatsRows(
                "scheduler_stats", tuple(collector.period.rows()["scheduler_stats"]), T0
            )
        )
    syncer_inbox.put(messages.ShutDown())
    g.join(timeout=10)
    row = database.read(lambda: SchedulerStats.get_by_id(PERIOD_ID))
    assert (row.iterations, row.max_inbox_length) == (2, 8)
