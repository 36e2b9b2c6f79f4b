"""What a job's overview page draws, beyond the statistics of `jobstats.py`.

Pure reads (call through `Database.read`), each a range of the job's own rows on the
`job_run` primary key (job_id, scheduled_at): slots per hour or day stacked by
state, the duration trend (a point per run, a rolling median, anomalies with their
explanation), and the last slots as a strip, skipped and missed ones with their
reason. Buckets are hours (24 h window) or days (7 d, 30 d) of the display zone, so
a day in the chart is the viewer's day, DST changes included.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from itinerary import jobstats, rawread, states
from itinerary.history import Anomaly
from itinerary.models import JobRun, tuples

STACKED = (states.SUCCEEDED, states.FAILED, states.MISSED, states.SKIPPED, states.KILLED)
ROLLING = 20  # runs in the rolling median
STRIP = 60
TREND_MAX = 5000  # points drawn; the newest when a window has more
HOUR_TD = timedelta(hours=1)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _utc(value: Any) -> datetime | None:
    return jobstats._utc(value)


def bucket_edges(since: datetime, now: datetime, hourly: bool, zone: str) -> list[datetime]:
    """The starts of the hours or days, in `zone`, that cover [since, now], in UTC.
    Days follow the zone's calendar: a DST change makes a day of 23 or 25 hours."""
    tz = ZoneInfo(zone)
    local = since.astimezone(tz)
    if hourly:  # an hour is 3,600 s everywhere; only where it starts depends on the zone
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return [start + timedelta(hours=i) for i in range(int((now - start) // HOUR_TD) + 1)]
    day, edges = local.date(), list[datetime]()
    while True:
        edge = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        if edge > now:
            return edges
        edges.append(edge)
        day += timedelta(days=1)


def window_rows_queries(job_id: int, window: str, now: datetime, zone: str) -> tuple[Any, Any]:
    """The slots counted per bucket and state, and the newest runs with a duration."""
    since = now - jobstats.WINDOWS[window]
    edges = bucket_edges(since, now, window == "24h", zone)
    slot = (JobRun.job_id == job_id) & (JobRun.scheduled_at >= since) & (JobRun.scheduled_at < now)
    bucket = pw.Case(
        None, [(JobRun.scheduled_at < e, i - 1) for i, e in enumerate(edges[1:], 1)], len(edges) - 1
    )
    counts = (
        JobRun.select(bucket.alias("b"), JobRun.status, pw.fn.COUNT(pw.SQL("*")))
        .where(slot & JobRun.status.in_(STACKED))
        .group_by(pw.SQL("b"), JobRun.status)
    )
    trend = (
        JobRun.select(JobRun.run_id, JobRun.status, JobRun.started_at, JobRun.completed_at)
        .where(slot & JobRun.started_at.is_null(False) & JobRun.completed_at.is_null(False))
        .order_by(JobRun.scheduled_at.desc())
        .limit(TREND_MAX)
    )
    return counts, trend


def window_rows(job_id: int, window: str, now: datetime, zone: str = "UTC") -> dict[str, Any]:
    """The reads behind `build`: slots per bucket and state counted by the database (one
    GROUP BY over the primary-key range, no row reaches Python), the newest `TREND_MAX`
    runs with a duration, and the window's anomalies."""
    counts, trend = window_rows_queries(job_id, window, now, zone)
    since = now - jobstats.WINDOWS[window]
    edges = bucket_edges(since, now, window == "24h", zone)
    return {
        "edges": [int(e.timestamp()) for e in edges],
        "counts": list(counts.tuples()),
        "rows": rawread.fetch(trend)[::-1],
        "anomalies": _anomalies(job_id, since),
    }


def _epoch(value: Any) -> float | None:
    """A raw timestamp column (naive UTC; SQLite: text) as seconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # the drivers' form; a quarter of `timestamp()`'s time
        return (value - _NAIVE_EPOCH).total_seconds()
    return value.timestamp()


def build(read: dict[str, Any], window: str, now: datetime, zone: str = "UTC") -> dict[str, Any]:
    """Slots per bucket by state, and the duration trend (pure: runs in a worker thread)."""
    since = now - jobstats.WINDOWS[window]
    edges = read["edges"]
    stacks = {s: [0] * len(edges) for s in STACKED}
    for index, status, count in read["counts"]:
        stacks[status][int(index)] += count
    points: list[tuple[float, float, str, str]] = []
    for run_id, status, started, completed in read["rows"]:
        start = _epoch(started)
        points.append((start, _epoch(completed) - start, status, run_id))  # type: ignore[arg-type, operator]
    explained = read["anomalies"]
    return {
        "window": window,
        "zone": zone,
        "from": int(since.timestamp()),
        "to": int(now.timestamp()),
        "buckets": {"hourly": window == "24h", "t": edges, **stacks},
        "trend": {
            "t": [p[0] for p in points],
            "duration": [round(p[1], 3) for p in points],
            "failed": [p[2] != states.SUCCEEDED for p in points],
            "runId": [p[3] for p in points],
            "p50": _rolling_median([p[1] for p in points]),
            "anomaly": [explained.get(p[3]) for p in points],
        },
    }


def charts(job_id: int, window: str, now: datetime, zone: str = "UTC") -> dict[str, Any]:
    """`build` of `window_rows`, in one call (read connection)."""
    return build(window_rows(job_id, window, now, zone), window, now, zone)


def _rolling_median(values: list[float]) -> list[float]:
    """The median of each value and the `ROLLING` - 1 before it (a sorted sliding window)."""
    out: list[float] = []
    window: list[float] = []
    for i, value in enumerate(values):
        bisect.insort(window, value)
        if i >= ROLLING:
            del window[bisect.bisect_left(window, values[i - ROLLING])]
        out.append(round(jobstats.percentile(window, 50) or 0.0, 3))
    return out


def _anomalies(job_id: int, since: datetime) -> dict[str, str]:
    rows = tuples(
        Anomaly.select(Anomaly.run_id, Anomaly.explanation).where(
            (Anomaly.job_id == job_id) & (Anomaly.detected_at >= since)
        )
    )
    return {run_id: text for run_id, text in rows if run_id}


def slot_strip(job_id: int, now: datetime, count: int = STRIP) -> list[dict[str, Any]]:
    """The job's last `count` slots, oldest first, each with its state and reason."""
    rows = (
        JobRun.select(
            JobRun.run_id,
            JobRun.scheduled_at,
            JobRun.status,
            JobRun.reason,
            JobRun.error,
            JobRun.trigger,
        )
        .where((JobRun.job_id == job_id) & (JobRun.scheduled_at <= now))
        .order_by(JobRun.scheduled_at.desc())
        .limit(count)
    )
    out = []
    for run_id, scheduled, status, reason, error, trigger in reversed(list(tuples(rows))):
        out.append(
            {
                "runId": run_id,
                "scheduledAt": _utc(scheduled),
                "state": status,
                "trigger": trigger,
                "reason": reason or (error.splitlines()[0][:200] if error else None),
            }
        )
    return out
