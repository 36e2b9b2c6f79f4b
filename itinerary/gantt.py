"""The run-history Gantt's data: every run in a time window as compact arrays.

`compute` (the reads through `Database.read`, the packing in the hub's thread pool)
serves the `/history` page's chart and its live increments. A window [from, to] shows
each run whose slot is in it (missed and skipped slots are points there) and each run
that started earlier but was still running inside it. Job names are sent once, runs as
short arrays, at most `CAP` of them, the most recent slots first, with the total that
matched so the page can say what it left out (ui.md P3 "Budget"). Both parts are index
ranges: the slot part on `scheduled_at`, the straddling part on `completed_at` and on
(status, scheduled_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
import peewee as pw

from itinerary import queries, rawread, states
from itinerary.db import Database, Job, JobRun
from itinerary.history import Anomaly

CAP = 5000
STATES = states.ALL
TRIGGERS = states.TRIGGERS
BEHIND, ANOMALY = 1, 2  # flag bits
ANOMALY_SLACK = timedelta(days=1)  # an anomaly is detected after its run started
COLUMNS = (
    JobRun.run_id,
    JobRun.job_id,
    JobRun.scheduled_at,
    JobRun.started_at,
    JobRun.completed_at,
    JobRun.status,
    JobRun.trigger,
    JobRun.attempt,
    JobRun.behind_schedule,
    JobRun.reason,
    JobRun.error,
    JobRun.updated_at,
)


@dataclass(frozen=True)
class GanttFilter:
    start: datetime
    end: datetime
    name: str | None = None
    tags: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    min_duration: float | None = None
    max_duration: float | None = None
    updated_after: datetime | None = None
    cap: int = CAP


_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(value: Any) -> int | None:
    """A raw timestamp column (naive UTC; SQLite: text) in ms since the epoch, exactly.

    Timedelta arithmetic, not `timestamp() * 1000`: a third of the cost (four a run, the
    larger part of a request) and no float rounding.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = queries._utc(value)
    return (value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)) // _MS


def _narrow(query: pw.Query, f: GanttFilter, job_ids: list[int] | None, now: datetime) -> Any:
    if job_ids is not None:
        query = query.where(JobRun.job_id.in_(job_ids))
    if f.status:
        query = query.where(JobRun.status.in_(list(f.status)))
    if f.triggers:
        query = query.where(JobRun.trigger.in_(list(f.triggers)))
    if f.min_duration is not None or f.max_duration is not None:
        query = query.where(queries.duration_clause(f.min_duration, f.max_duration, now))
    if f.updated_after is not None:
        query = query.where(JobRun.updated_at >= f.updated_after)  # the page dedups by id
    return query


def window_queries(f: GanttFilter, job_ids: list[int] | None, now: datetime) -> dict[str, Any]:
    """The SELECTs of one window: slots in it (newest first, capped), their count, and
    the runs that started before it and ended inside it or still run."""
    in_slot = (JobRun.scheduled_at >= f.start) & (JobRun.scheduled_at <= f.end)
    before = JobRun.scheduled_at < f.start
    ended_inside = before & (JobRun.completed_at >= f.start) & (JobRun.started_at <= f.end)
    still_active = before & JobRun.status.in_([states.STARTING, states.RUNNING])
    slots = _narrow(JobRun.select(*COLUMNS).where(in_slot), f, job_ids, now)
    return {
        "slots": slots.order_by(JobRun.scheduled_at.desc()).limit(f.cap),
        "count": _narrow(JobRun.select(pw.fn.COUNT(pw.SQL("*"))).where(in_slot), f, job_ids, now),
        "ended_inside": _narrow(JobRun.select(*COLUMNS).where(ended_inside), f, job_ids, now).limit(
            f.cap
        ),
        "still_active": _narrow(JobRun.select(*COLUMNS).where(still_active), f, job_ids, now).limit(
            f.cap
        ),
    }


def gantt_data(f: GanttFilter, now: datetime) -> dict[str, Any]:
    """The window's runs as `{"jobs", "runs", "states", "triggers", "total", "cursor", ...}`.

    Each run is `[run_id, job_index, scheduled_ms, start_ms, end_ms, state, trigger,
    attempt, flags, reason]` (state and trigger as indexes into `states`/`triggers`).
    `cursor` is the newest `updated_at` seen, in ms: the next poll's `updated_after`.
    """
    return pack(window_rows(f, now), f, now)


def compute(database: Database, f: GanttFilter, now: datetime) -> dict[str, Any]:
    """`gantt_data` without holding the gevent hub: reads through `Database.read` (rows
    converted in slices, see `rawread`), packing (~15 ms of Python for 1,500 runs) in
    the hub's thread pool, so concurrent requests and the scheduler loop interleave."""
    read = database.read(window_rows, f, now)
    return gevent.get_hub().threadpool.apply(pack, (read, f, now))


def window_rows(f: GanttFilter, now: datetime) -> dict[str, Any]:
    """The reads behind `pack`: the window's raw rows, the total that matched, job names
    and the anomalous runs."""
    job_ids = queries._job_ids_for(
        queries.RunFilter(name=f.name or None, tags=f.tags)  # narrows on the job tables
    )
    rows: list[tuple[Any, ...]] = []
    total = 0
    if job_ids != []:
        q = window_queries(f, job_ids, now)
        total = queries._raw(q["count"])[0][0]
        rows = rawread.fetch(q["slots"])
        seen = {r[0] for r in rows}
        for name in ("ended_inside", "still_active"):
            fresh = [r for r in rawread.fetch(q[name]) if r[0] not in seen]
            seen.update(r[0] for r in fresh)
            total += len(fresh)
            rows.extend(fresh[: max(0, f.cap - len(rows))])
    shown = sorted({r[1] for r in rows})
    names = (
        dict(queries._raw(Job.select(Job.id, Job.name).where(Job.id.in_(_ints(shown)))))
        if rows
        else {}
    )
    anomalous = _anomalous(shown, f.start - ANOMALY_SLACK) if rows else set()
    return {"rows": rows, "total": total, "names": names, "anomalous": anomalous}


def job_zones(name: str | None, tags: tuple[str, ...], limit: int = 5) -> list[str]:
    """The zones other than UTC of the jobs that `name` and `tags` select (at most `limit`):
    the page's zone switch offers them beside UTC and the browser's zone."""
    job_ids = queries._job_ids_for(queries.RunFilter(name=name or None, tags=tags))
    query = Job.select(Job.timezone).where(Job.timezone != "UTC").distinct()
    if job_ids is not None:
        query = query.where(Job.id.in_(_ints(job_ids) if job_ids else [-1]))
    return [z for (z,) in queries._raw(query.order_by(Job.timezone).limit(limit))]


def _ints(values: list[int]) -> pw.SQL:
    """An IN list of integers as SQL text: peewee takes ~60 us a parameter to build one
    (1,000 job ids: 60 ms, more than the rest of the request); integers need no quoting."""
    return pw.SQL("(" + ",".join(str(int(v)) for v in values) + ")")


def _anomalous(job_ids: list[int], since: datetime) -> set[str]:
    """Runs of these jobs flagged since `since` (index on job_id, detected_at)."""
    query = Anomaly.select(Anomaly.run_id).where(
        Anomaly.job_id.in_(_ints(job_ids)) & (Anomaly.detected_at >= since)
    )
    return {r for (r,) in queries._raw(query) if r}


def pack(read: dict[str, Any], f: GanttFilter, now: datetime) -> dict:
    """`window_rows`' rows as the page's compact arrays (pure: runs in a worker thread)."""
    rows, total, names, anomalous = read["rows"], read["total"], read["names"], read["anomalous"]
    job_ids = sorted({r[1] for r in rows})
    index = {job_id: i for i, job_id in enumerate(job_ids)}
    state_code = {s: i for i, s in enumerate(STATES)}
    trigger_code = {t: i for i, t in enumerate(TRIGGERS)}
    runs = []
    newest = None
    for (
        run_id,
        job_id,
        sched,
        start,
        end,
        status,
        trigger,
        attempt,
        behind,
        reason,
        err,
        upd,
    ) in rows:
        flags = (BEHIND if behind else 0) | (ANOMALY if run_id in anomalous else 0)
        runs.append(
            [
                run_id,
                index[job_id],
                _ms(sched),
                _ms(start),
                _ms(end),
                state_code.get(status, -1),
                trigger_code.get(trigger, -1),
                attempt,
                flags,
                reason or (err.splitlines()[0][:300] if err else None),
            ]
        )
        stamp = _ms(upd)
        newest = stamp if newest is None or (stamp is not None and stamp > newest) else newest
    return {
        "from": _ms(f.start),
        "to": _ms(f.end),
        "now": _ms(now),
        "jobs": [names.get(j, f"job {j}") for j in job_ids],
        "jobIds": job_ids,
        "states": list(STATES),
        "triggers": list(TRIGGERS),
        "runs": runs,
        "total": total,
        "cap": f.cap,
        "cut": total > len(runs),
        "cursor": newest,
    }
