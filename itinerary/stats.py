"""The stats collector: statistics from every component, per period, to the database.

Inbox: `queues.stats` (`LoopIteration`, `RunStartLateness`, `RunCompleted`,
`SyncerFlushed`, `WebhookDelivered`, `DatabaseError`). Outbox: `queues.syncer`, one
`StatsRows` per table when a period ends (and on ShutDown for the period under way).

A period is `config.stats_period` seconds on the injected clock; its
`stats_period_id` is its start in epoch seconds and every time in the rows is in
milliseconds (migrations/*/001_initial.sql). A helper greenlet sleeps until each
period's end on the clock and puts a private marker on the inbox, so all counting
happens in one greenlet, in message order. The current values are kept for
`/metrics` (`registry`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gevent.queue import Full
from prometheus_client import CollectorRegistry

from itinerary import messages
from itinerary.clock import EPOCH, Clock
from itinerary.config import Config
from itinerary.inbox import serve_beside
from itinerary.metrics import Metrics

log = logging.getLogger(__name__)


class Agg:
    """Count, sum, min and max of a series: enough for the tables' min/avg/max columns."""

    __slots__ = ("n", "total", "low", "high")

    def __init__(self) -> None:
        self.n, self.total, self.low, self.high = 0, 0.0, math.inf, -math.inf

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    def columns(self, name: str, scale: float = 1.0) -> dict[str, float]:
        """`min_<name>`, `avg_<name>`, `max_<name>` (0 when nothing was seen)."""
        if not self.n:
            return {f"min_{name}": 0, f"avg_{name}": 0.0, f"max_{name}": 0}
        return {
            f"min_{name}": self.low * scale,
            f"avg_{name}": self.total / self.n * scale,
            f"max_{name}": self.high * scale,
        }


@dataclass(frozen=True)
class _PeriodEnd:
    """Private marker from the timer greenlet: the period starting at `start` is over."""

    start: float


class Period:
    """Everything counted during one stats period."""

    def __init__(self, start: float, length: float) -> None:
        self.start, self.length = start, length
        # scheduler loop
        self.iterations = self.run_jobs = self.late_jobs = self.missed = self.cancelled = 0
        self.late_s = self.missed_s = 0.0
        self.empty_inbox_s = 0.0
        self.loop_inbox, self.loop_wait = Agg(), Agg()
        self.last_iteration: datetime | None = None
        # orchestrators: run_id -> row
        self.runs: dict[str, dict[str, Any]] = {}
        # syncer
        self.writes = self.writes_ok = self.writes_failed = 0
        self.in_flight, self.queued, self.syncer_inbox = Agg(), Agg(), Agg()
        self.in_queue, self.syncer_wait = Agg(), Agg()
        # webhooks
        self.sent = self.delivered = self.undelivered = self.retries = 0
        self.delivery, self.webhook_inbox = Agg(), Agg()

    def bounds(self) -> dict[str, Any]:
        start = EPOCH + timedelta(seconds=self.start)
        return {
            "stats_period_id": int(self.start),
            "start_time": start,
            "end_time": start + timedelta(seconds=self.length),
        }

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """The period's rows per table; a table with nothing to say gets none."""
        out: dict[str, list[dict[str, Any]]] = {}
        if self.iterations:
            out["scheduler_stats"] = [
                {
                    **self.bounds(),
                    "iterations": self.iterations,
                    "run_jobs": self.run_jobs,
                    "late_jobs": self.late_jobs,
                    "time_passed_run_time": self.late_s * 1000,
                    "missed_jobs": self.missed,
                    "time_passed_grace_period": self.missed_s * 1000,
                    "jobs_cancelled": self.cancelled,
                    "empty_inbox_time": self.empty_inbox_s * 1000,
                    **self.loop_inbox.columns("inbox_length"),
                    **self.loop_wait.columns("time_in_inbox", 1000),
                }
            ]
        if self.runs:
            out["orchestrator_stats"] = list(self.runs.values())
        if self.writes:
            out["syncer_stats"] = [
                {
                    **self.bounds(),
                    "total_writes": self.writes,
                    "writes_succeeded": self.writes_ok,
                    "writes_failed": self.writes_failed,
                    **self.in_flight.columns("writes_in_flight"),
                    **self.queued.columns("queued_writes"),
                    **self.syncer_inbox.columns("inbox_length"),
                    **self.in_queue.columns("time_in_write_queue", 1000),
                    **self.syncer_wait.columns("time_in_inbox", 1000),
                }
            ]
        if self.sent:
            out["webhook_handler_stats"] = [
                {
                    **self.bounds(),
                    "webhooks_sent": self.sent,
                    "webhooks_succeeded": self.delivered,
                    "webhooks_failed": self.undelivered,
                    "total_retries": self.retries,
                    **self.delivery.columns("delivery_time", 1000),
                    **self.webhook_inbox.columns("inbox_length"),
                }
            ]
        return out


class StatsCollector:
    """Aggregates component statistics per period; see the module docstring."""

    def __init__(self, inbox: Any, syncer_inbox: Any, clock: Clock, config: Config) -> None:
        self.inbox = inbox
        self.syncer_inbox = syncer_inbox
        self.clock = clock
        self.length = float(config.stats_period)
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.period = Period(self._period_start(clock.now()), self.length)
        # The anomaly detector's inbox: run starts and ends are passed on (never waited for).
        self.anomaly_inbox: Any = None

    def _period_start(self, at: datetime) -> float:
        epoch = (at - EPOCH).total_seconds()
        return math.floor(epoch / self.length) * self.length

    def watch_inbox(self, component: str, qsize: Any) -> None:
        """Export `component`'s inbox length (a `qsize` callable) at /metrics."""
        self.metrics.watch_inbox(component, qsize)

    def run(self) -> None:
        """Greenlet body: returns after ShutDown, once the current period is sent."""
        serve_beside(self._timer, self.inbox, self.handle)
        self._send(self.period)

    def _timer(self) -> None:
        while True:
            start = self._period_start(self.clock.now())
            self.clock.sleep_until(EPOCH + timedelta(seconds=start + self.length))
            self.inbox.put(_PeriodEnd(start))

    def handle(self, msg: Any) -> None:
        """Count one message into the current period and the metrics."""
        if isinstance(msg, _PeriodEnd):
            self._roll(msg.start + self.length)
            return
        at = getattr(msg, "at", None)
        if at is not None and self._period_start(at) >= self.period.start + self.length:
            self._roll(self._period_start(at))
        handler = getattr(self, f"_on_{type(msg).__name__}", None)
        if handler is None:
            log.error("stats: ignoring a message it does not know: %r", msg)
            return
        handler(msg)

    def _roll(self, new_start: float) -> None:
        """Close the current period (send its rows) and start the one at `new_start`."""
        if new_start <= self.period.start:
            return
        self._send(self.period)
        self.period = Period(new_start, self.length)

    def _send(self, period: Period) -> None:
        for table, rows in period.rows().items():
            self.syncer_inbox.put(messages.StatsRows(table, tuple(rows), self.clock.now()))

    def _on_LoopIteration(self, m: messages.LoopIteration) -> None:  # noqa: N802
        p = self.period
        p.iterations += 1
        p.run_jobs += m.launched
        p.late_jobs += m.late
        p.late_s += sum(m.late_by_s)
        p.missed += m.missed
        p.missed_s += sum(m.missed_by_s)
        p.cancelled += m.cancelled
        p.loop_inbox.add(m.inbox_length)
        p.loop_wait.extend(m.time_in_inbox_s)
        if m.inbox_length == 0 and p.last_iteration is not None:
            # The inbox was found empty: count the time since the previous iteration.
            p.empty_inbox_s += max(0.0, (m.at - p.last_iteration).total_seconds())
        p.last_iteration = m.at
        self.metrics.loop_iteration.observe(m.duration_s)

    def _on_RunStartLateness(self, m: messages.RunStartLateness) -> None:  # noqa: N802
        self.metrics.start_lateness.observe(max(0.0, m.lateness_s))
        self._pass_on(m)

    def _pass_on(self, msg: Any) -> None:
        if self.anomaly_inbox is None:
            return
        try:
            self.anomaly_inbox.put_nowait(msg)
        except Full:
            log.warning("stats: anomaly detector inbox full, not scoring %s", msg.run_id)

    def _on_RunCompleted(self, m: messages.RunCompleted) -> None:  # noqa: N802
        self.period.runs[m.run_id] = {
            "run_id": m.run_id,
            "stats_period_id": int(self.period.start),
            "runtime": None if m.runtime_s is None else m.runtime_s * 1000,
            "constraints_checked": m.constraints_checked,
            "actions_taken": m.actions_taken,
        }
        self.metrics.runs.labels(m.job_name, m.status).inc()
        self._pass_on(m)

    def _on_SyncerFlushed(self, m: messages.SyncerFlushed) -> None:  # noqa: N802
        p = self.period
        p.writes += m.rows
        if m.ok:
            p.writes_ok += m.rows
        else:
            p.writes_failed += m.rows
        p.in_flight.add(m.in_flight)
        p.queued.add(m.queued)
        p.syncer_inbox.add(m.inbox_length)
        p.in_queue.extend(m.time_in_queue_s)
        p.syncer_wait.extend(m.time_in_inbox_s)
        self.metrics.syncer_queued.set(m.queued)
        self.metrics.syncer_flush.labels(m.kind).observe(m.duration_s)
        self.metrics.syncer_writes.labels(m.kind, "ok" if m.ok else "error").inc(m.rows)

    def _on_WebhookDelivered(self, m: messages.WebhookDelivered) -> None:  # noqa: N802
        p = self.period
        p.sent += 1
        if m.ok:
            p.delivered += 1
        else:
            p.undelivered += 1
        p.retries += m.retries
        p.delivery.add(m.duration_s)
        p.webhook_inbox.add(m.inbox_length)
        self.metrics.webhooks.labels(m.integration, "ok" if m.ok else "failed").inc()

    def _on_DatabaseError(self, m: messages.DatabaseError) -> None:  # noqa: N802
        self.metrics.database_errors.labels(m.component).inc()
