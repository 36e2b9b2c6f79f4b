"""Per-job statistics over a window (24h, 7d, 30d): what a job's runs did, in figures.

`compute` is the entry point for the web and the API: the reads (`window_rows`, on the
read-only connection through `Database.read`) yield to the hub between slices of rows,
and the arithmetic (`summarize`) runs in the hub's thread pool. The window's whole
hours come from the roll-up of `itinerary/rollup.py` (720 rows for 30 days rather than
43,200 runs), the rest as the job's own rows by the primary key (job_id, scheduled_at);
the figures are computed here in Python, so the three dialects give identical answers
(their percentile and interval functions all differ, and MySQL has none for percentiles).

Definitions: a run's duration is `completed_at - started_at` (runs that started and
ended); its start lateness is `started_at - scheduled_at` for runs the schedule made
(triggers `schedule` and `catchup`); the success rate is succeeded over the runs that
ran to an end (succeeded, failed, killed, lost); retries are attempts after the first.
Percentiles interpolate linearly between the closest ranks (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import gevent
from gevent.queue import Full
from gevent.queue import ShutDown as QueueShutDown

from itinerary import rollup, states
from itinerary.db import Database
from itinerary.history import Anomaly
from itinerary.messages import StatsRows
from itinerary.models import tuples

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
ENDED = (states.SUCCEEDED, states.FAILED, states.KILLED, states.LOST)
SCHEDULED_TRIGGERS = rollup.SCHEDULED_TRIGGERS
REASONS_SHOWN = 10


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


_utc = rollup.utc


def _summary(values: list[float], *, mean: bool) -> dict[str, float | None]:
    values.sort()
    out: dict[str, float | None] = {}
    if mean:
        out["mean"] = _round(sum(values) / len(values)) if values else None
    out["p50"] = _round(percentile(values, 50))
    out["p95"] = _round(percentile(values, 95))
    if mean:
        out["max"] = _round(values[-1]) if values else None
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


window_query = rollup.row_query


def window_rows(job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The reads behind `summarize`: the window as stored hours of `job_run_hours` and
    raw rows (converted in slices, see `rawread`), and the anomaly counts."""
    since = now - WINDOWS[window]
    return {**rollup.read(job_id, since, now), "anomalies": _anomaly_counts(job_id, since)}


def job_stats(job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The statistics of job `job_id`'s runs whose slot is in the window ending at `now`."""
    return summarize(window_rows(job_id, window, now), job_id, window, now)[0]


Store = Callable[[list[dict[str, Any]]], None]


def compute(
    database: Database, job_id: int, window: str, now: datetime, store: Store | None = None
) -> dict[str, Any]:
    """`job_stats` without holding the gevent hub: the rows are read cooperatively and
    the arithmetic runs in the hub's thread pool. The hours recomputed from rows whose
    runs have all ended go to `store` (the syncer, see `rollup_store`)."""
    read = database.read(window_rows, job_id, window, now)
    stats, hours = gevent.get_hub().threadpool.apply(summarize, (read, job_id, window, now))
    if hours and store is not None:
        store(hours)
    return stats


RECENT_S = 5.0  # how long the API reuses a job's figures (`recent`)
RECENT_MAX = 1000
_recent: dict[tuple[Any, int, str], tuple[datetime, dict[str, Any]]] = {}


def recent(
    database: Database, job_id: int, window: str, now: datetime, store: Store | None = None
) -> dict[str, Any]:
    """`compute`, reused for up to `RECENT_S` (their `to` says when they were computed).

    From the roll-up a 30-day window of an every-minute job costs ~50 ms of this process's
    CPU; a dashboard polling the endpoint 20 times a second would take all of it.
    """
    key = (database, job_id, window)
    hit = _recent.get(key)
    if hit is not None and 0 <= (now - hit[0]).total_seconds() < RECENT_S:
        return hit[1]
    stats = compute(database, job_id, window, now, store)
    if len(_recent) >= RECENT_MAX:
        _recent.clear()
    _recent[key] = (now, stats)
    return stats


def rollup_store(syncer_inbox: Any, now: datetime) -> Store:
    """A `Store` that hands hours to the syncer, never waiting: a full inbox drops them,
    and a later view recomputes them (they are a cache of `job_run`)."""

    table = rollup.JobRunHour._meta.table_name

    def store(hours: list[dict[str, Any]]) -> None:
        try:
            syncer_inbox.put_nowait(StatsRows(table, tuple(hours), now))
        except (Full, QueueShutDown):
            pass

    return store


def summarize(
    read: dict[str, Any], job_id: int, window: str, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The figures of `window_rows`' hours and rows, and the hours to store (pure: runs
    in a worker thread)."""
    since = now - WINDOWS[window]
    total, hours = rollup.combine(read)
    by_state, reasons = total["states"], total["reasons"]
    ended = sum(by_state[s] for s in ENDED)
    return {
        "jobId": job_id,
        "window": window,
        "from": since.isoformat().replace("+00:00", "Z"),
        "to": now.isoformat().replace("+00:00", "Z"),
        "runs": sum(by_state.values()),
        "runsByState": dict(sorted(by_state.items())),
        "successRate": _round(by_state[states.SUCCEEDED] / ended) if ended else None,
        "retries": total["retries"],
        "runsRetried": total["retried"],
        "durationSeconds": _summary(total["durations"], mean=True),
        "startLatenessSeconds": _summary(total["lateness"], mean=False),
        "failureReasons": [
            {"reason": r, "count": n}
            for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:REASONS_SHOWN]
        ],
        "anomalies": read["anomalies"],
    }, hours


def _anomaly_counts(job_id: int, since: datetime) -> dict[str, int]:
    rows = tuples(
        Anomaly.select(Anomaly.kind).where(
            (Anomaly.job_id == job_id) & (Anomaly.detected_at >= since)
        )
    )
    return dict(sorted(Counter(kind for (kind,) in rows).items()))
