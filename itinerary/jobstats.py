"""Per-job statistics over a window (24h, 7d, 30d): what a job's runs did, in figures.

`compute` is the entry point for the web and the API: the reads (`window_rows`, on the
read-only connection through `Database.read`) yield to the hub between slices of rows,
and the arithmetic (`summarize`) runs in the hub's thread pool. The window's
runs are read by the primary key (job_id, scheduled_at), a range of one job's rows,
and only the few columns needed; the figures are computed here in Python, so the
three dialects give identical answers (their percentile and interval functions all
differ, and MySQL has none for percentiles).

Definitions: a run's duration is `completed_at - started_at` (runs that started and
ended); its start lateness is `started_at - scheduled_at` for runs the schedule made
(triggers `schedule` and `catchup`); the success rate is succeeded over the runs that
ran to an end (succeeded, failed, killed, lost); retries are attempts after the first.
Percentiles interpolate linearly between the closest ranks (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent

from itinerary import rawread, states
from itinerary.db import Database
from itinerary.history import Anomaly
from itinerary.models import JobRun, tuples

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
ENDED = (states.SUCCEEDED, states.FAILED, states.KILLED, states.LOST)
SCHEDULED_TRIGGERS = ("schedule", "catchup")
REASONS_SHOWN = 10


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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


def window_query(job_id: int, since: datetime, until: datetime) -> Any:
    """The columns the figures need, of the job's runs with a slot in [since, until)."""
    return JobRun.select(
        JobRun.status,
        JobRun.attempt,
        JobRun.trigger,
        JobRun.scheduled_at,
        JobRun.started_at,
        JobRun.completed_at,
        JobRun.reason,
        JobRun.error,
    ).where(
        (JobRun.job_id == job_id) & (JobRun.scheduled_at >= since) & (JobRun.scheduled_at < until)
    )


def window_rows(job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The reads behind `summarize`: the window's runs as raw rows (converted in slices,
    see `rawread`), and the anomaly counts."""
    since = now - WINDOWS[window]
    return {
        "rows": rawread.fetch(window_query(job_id, since, now)),
        "anomalies": _anomaly_counts(job_id, since),
    }


def job_stats(job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The statistics of job `job_id`'s runs whose slot is in the window ending at `now`."""
    return summarize(window_rows(job_id, window, now), job_id, window, now)


def compute(database: Database, job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """`job_stats` without holding the gevent hub: the rows are read cooperatively and
    the arithmetic (~0.1 s of Python for 43,200 runs) runs in the hub's thread pool."""
    read = database.read(window_rows, job_id, window, now)
    return gevent.get_hub().threadpool.apply(summarize, (read, job_id, window, now))


def summarize(read: dict[str, Any], job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The figures of `window_rows`' rows (pure: runs in a worker thread)."""
    since = now - WINDOWS[window]
    by_state: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    durations: list[float] = []
    lateness: list[float] = []
    retries = retried = 0
    for status, attempt, trigger, scheduled, started, completed, reason, error in read["rows"]:
        by_state[status] += 1
        retries += max(0, (attempt or 1) - 1)
        retried += 1 if (attempt or 1) > 1 else 0
        started, completed = _utc(started), _utc(completed)
        if started is not None and completed is not None:
            durations.append((completed - started).total_seconds())
        if started is not None and trigger in SCHEDULED_TRIGGERS:
            lateness.append((started - _utc(scheduled)).total_seconds())
        if status in (states.FAILED, states.KILLED, states.LOST):
            reasons[reason or error or "no reason recorded"] += 1
    ended = sum(by_state[s] for s in ENDED)
    return {
        "jobId": job_id,
        "window": window,
        "from": since.isoformat().replace("+00:00", "Z"),
        "to": now.isoformat().replace("+00:00", "Z"),
        "runs": sum(by_state.values()),
        "runsByState": dict(sorted(by_state.items())),
        "successRate": _round(by_state[states.SUCCEEDED] / ended) if ended else None,
        "retries": retries,
        "runsRetried": retried,
        "durationSeconds": _summary(durations, mean=True),
        "startLatenessSeconds": _summary(lateness, mean=False),
        "failureReasons": [
            {"reason": r, "count": n}
            for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:REASONS_SHOWN]
        ],
        "anomalies": read["anomalies"],
    }


def _anomaly_counts(job_id: int, since: datetime) -> dict[str, int]:
    rows = tuples(
        Anomaly.select(Anomaly.kind).where(
            (Anomaly.job_id == job_id) & (Anomaly.detected_at >= since)
        )
    )
    return dict(sorted(Counter(kind for (kind,) in rows).items()))
