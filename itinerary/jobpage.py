"""What a job's overview page draws, beyond the statistics of `jobstats.py`.

Pure reads (call through `Database.read`), each a range of the job's own rows on the
`job_run` primary key (job_id, scheduled_at): slots per hour or day stacked by
state, the duration trend (a point per run, a rolling median, anomalies with their
explanation), and the last slots as a strip, skipped and missed ones with their
reason. Buckets are UTC hours (24 h window) or UTC days (7 d, 30 d).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from itinerary import jobstats, rawread, states
from itinerary.history import Anomaly
from itinerary.models import JobRun, tuples

STACKED = (states.SUCCEEDED, states.FAILED, states.MISSED, states.SKIPPED, states.KILLED)
ROLLING = 20  # runs in the rolling median
STRIP = 60
TREND_MAX = 5000  # points drawn; the newest when a window has more


def _utc(value: Any) -> datetime | None:
    return jobstats._utc(value)


def _bucket_start(at: datetime, hourly: bool) -> datetime:
    at = at.astimezone(UTC)
    if hourly:
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def window_rows(job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The reads behind `build`: the window's runs as raw rows, and its anomalies."""
    since = now - jobstats.WINDOWS[window]
    query = (
        JobRun.select(
            JobRun.run_id,
            JobRun.scheduled_at,
            JobRun.status,
            JobRun.started_at,
            JobRun.completed_at,
        )
        .where(
            (JobRun.job_id == job_id) & (JobRun.scheduled_at >= since) & (JobRun.scheduled_at < now)
        )
        .order_by(JobRun.scheduled_at)
    )
    return {"rows": rawread.fetch(query), "anomalies": _anomalies(job_id, since)}


def _epoch(value: Any) -> float | None:
    """A raw timestamp column (naive UTC; SQLite: text) as seconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC).timestamp() if value.tzinfo is None else value.timestamp()


def build(read: dict[str, Any], window: str, now: datetime) -> dict[str, Any]:
    """Slots per bucket by state, and the duration trend (pure: runs in a worker thread,
    43,200 runs take ~0.1 s of Python that would otherwise hold the gevent hub)."""
    since = now - jobstats.WINDOWS[window]
    hourly = window == "24h"
    step = 3600 if hourly else 86400
    first = _bucket_start(since, hourly).timestamp()
    count = int((_bucket_start(now, hourly).timestamp() - first) // step) + 1
    stacks = {s: [0] * count for s in STACKED}
    points: list[tuple[float, float, str, str]] = []
    for run_id, scheduled, status, started, completed in read["rows"]:
        index = int((_epoch(scheduled) - first) // step)  # type: ignore[operator]
        if status in stacks and 0 <= index < count:
            stacks[status][index] += 1
        if started is not None and completed is not None:
            start = _epoch(started)
            points.append((start, _epoch(completed) - start, status, run_id))  # type: ignore[arg-type, operator]
    points = points[-TREND_MAX:]
    explained = read["anomalies"]
    return {
        "window": window,
        "from": int(since.timestamp()),
        "to": int(now.timestamp()),
        "buckets": {
            "hourly": hourly,
            "t": [int(first) + i * step for i in range(count)],
            **{s: stacks[s] for s in STACKED},
        },
        "trend": {
            "t": [p[0] for p in points],
            "duration": [round(p[1], 3) for p in points],
            "failed": [p[2] != states.SUCCEEDED for p in points],
            "runId": [p[3] for p in points],
            "p50": _rolling_median([p[1] for p in points]),
            "anomaly": [explained.get(p[3]) for p in points],
        },
    }


def charts(job_id: int, window: str, now: datetime) -> dict[str, Any]:
    """`build` of `window_rows`, in one call (read connection)."""
    return build(window_rows(job_id, window, now), window, now)


def _rolling_median(values: list[float]) -> list[float]:
    out = []
    for i in range(len(values)):
        window = sorted(values[max(0, i - ROLLING + 1) : i + 1])
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
