"""A job's history pages: overview (`/jobs/{id}`), its runs and its events, as tabs.

The overview shows the statistics of `itinerary.jobstats` as tiles for a window
(24 h, 7 d, 30 d), the two charts (`static/charts.js` draws them with uPlot from
`/jobs/{id}/charts.json`, with the same numbers as a table beside each), the last
60 slots as a strip with the reason of each skipped or missed one, the next runs,
recent runs and the alerts sent. The Runs tab filters like /history; the Events
tab pages `itinerary.jobevents` back in time. The Definition tab is part 1's page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import bottle
import gevent
from gevent.event import AsyncResult
from markupsafe import Markup

from itinerary import jobevents, jobpage, jobstats, operations, queries, states
from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.jobs import JobSpec
from itinerary.web import history, reads
from itinerary.web.jobs import job_id_of, next_run, status_of
from itinerary.web.pipeline import Req, page

RUNS_PAGE = 50
EVENTS_PAGE = 50
TYPE_LABELS = {
    "violation": "Constraint violations",
    "action": "Actions",
    "delivery": "Alerts sent",
    "anomaly": "Anomalies",
    "flip": "State flips",
    "change": "Definition changes",
}


def _window(req: Req) -> str:
    window = req.request.query.get("window") or "24h"
    if window not in jobstats.WINDOWS:
        raise ApiError(400, f"window must be one of {', '.join(jobstats.WINDOWS)}")
    return window


def script_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> element: no `<`, `>` or `&` in it, so no
    text in the data (an anomaly's explanation) can close the element."""
    text = json.dumps(value, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def in_zone(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%a %b %d, %H:%M")


def header(ctx: Context, req: Req, job: JobSpec) -> dict[str, Any]:
    """What every tab's header shows."""
    last = ctx.database.read(reads.last_runs, [job.stored_id], req.now).get(job.stored_id)
    return {
        "job": job,
        "last": last,
        "job_status": status_of(job, last),
        "next": next_run(job, req.now),
    }


def _chart_summary(data: dict[str, Any]) -> str:
    totals = {s: sum(data["buckets"][s]) for s in jobpage.STACKED}
    parts = [f"{n:,} {s}" for s, n in totals.items() if n]
    span = {"24h": "24 hours", "7d": "7 days", "30d": "30 days"}[data["window"]]
    return f"{span}: " + (", ".join(parts) if parts else "no runs recorded")


def _late(run: dict[str, Any]) -> float | None:
    if not run["startedAt"] or run["trigger"] not in jobstats.SCHEDULED_TRIGGERS:
        return None
    started = datetime.fromisoformat(run["startedAt"].replace("Z", "+00:00"))
    scheduled = datetime.fromisoformat(run["scheduledAt"].replace("Z", "+00:00"))
    return (started - scheduled).total_seconds()


def _slot_rows(data: dict[str, Any]) -> list[tuple[datetime, list[int]]]:
    """The stacked chart as table rows (buckets with any slot), for the data table."""
    b = data["buckets"]
    rows = []
    for i, t in enumerate(b["t"]):
        counts = [b[s][i] for s in jobpage.STACKED]
        if any(counts):
            rows.append((datetime.fromtimestamp(t, UTC), counts))
    return rows


class Figures:
    """Each job's statistics and charts per window, computed at most once a minute.

    A job that runs every minute has 43,200 runs in 30 days; reading and summing them
    takes about a second, too much for every view and every poll (ui.md §7). Figures
    up to `CACHE_S` old are served (the page says when they were computed), and
    concurrent views of the same job and window wait for one computation. The charts'
    arithmetic runs in the hub's thread pool, so the gevent loop keeps turning.
    """

    CACHE_S = 60.0
    MAX_ENTRIES = 1000

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cache: dict[tuple[int, str], tuple[datetime, dict[str, Any], dict[str, Any]]] = {}
        self.pending: dict[tuple[int, str], AsyncResult] = {}

    def get(self, job_id: int, window: str, now: datetime) -> tuple[datetime, dict, dict]:
        key = (job_id, window)
        hit = self.cache.get(key)
        if hit is not None and 0 <= (now - hit[0]).total_seconds() < self.CACHE_S:
            return hit
        waiting = self.pending.get(key)
        if waiting is not None:
            return waiting.get()
        result = AsyncResult()
        self.pending[key] = result
        try:
            database = self.ctx.database
            stats = jobstats.compute(database, job_id, window, now)
            rows = database.read(jobpage.window_rows, job_id, window, now)
            charts = gevent.get_hub().threadpool.apply(jobpage.build, (rows, window, now))
        except BaseException as exc:
            result.set_exception(exc)
            raise
        finally:
            self.pending.pop(key, None)
        if len(self.cache) >= self.MAX_ENTRIES:
            self.cache.clear()
        self.cache[key] = (now, stats, charts)
        result.set(self.cache[key])
        return self.cache[key]


def install(root: bottle.Bottle, ctx: Context) -> None:
    figures = Figures(ctx)

    @root.get("/jobs/<job_id>")
    @page(ctx)
    def overview(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        window = _window(req)
        computed, stats, charts = figures.get(job.stored_id, window, req.now)
        strip = ctx.database.read(jobpage.slot_strip, job.id, req.now)
        nexts = (
            job.cron.next_n(req.now, 10) if job.cron and job.enabled and not job.archived_at else []
        )
        alerts = ctx.database.read(jobevents.job_events, job.id, ("delivery",), None, 5)
        return req.render(
            "jobs/show.html",
            **header(ctx, req, job),
            tab="overview",
            window=window,
            windows=tuple(jobstats.WINDOWS),
            stats=stats,
            computed=computed,
            charts=charts,
            charts_json=script_json(charts),
            chart_summary=_chart_summary(charts),
            constraints={
                "expected": job.seconds("maxExpectedRunTime"),
                "allowed": job.seconds("maxAllowedRunTime"),
            },
            strip=strip,
            next_runs=[(at, in_zone(at, job.timezone)) for at in nexts],
            recent=ctx.database.read(reads.job_runs, job.id, req.now),
            alerts=alerts["items"],
            stacked=jobpage.STACKED,
            slot_rows=_slot_rows(charts),
        )

    @root.get("/jobs/<job_id>/charts.json")
    @page(ctx)
    def charts_json(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        _, _, data = figures.get(job.stored_id, _window(req), req.now)
        return bottle.HTTPResponse(
            body=json.dumps(data, separators=(",", ":")),
            headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
        )

    @root.get("/jobs/<job_id>/runs")
    @page(ctx)
    def runs_tab(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        f = history.read_filters(req.request.query, req.now, default_range="30d")
        rows: list[dict[str, Any]] = []
        nxt = None
        if not f.errors:
            run_filter = queries.RunFilter(
                job_ids=(job.stored_id,),
                status=f.states,
                triggers=f.triggers,
                scheduled_from=f.start,
                scheduled_to=f.end,
                min_duration=f.min_duration,
                max_duration=f.max_duration,
                limit=RUNS_PAGE,
                cursor=req.request.query.get("cursor") or None,
            )
            try:
                found = json.loads(str(ctx.database.read(queries.list_runs, run_filter, req.now)))
                rows, nxt = found["items"], found.get("nextCursor")
                for r in rows:
                    r["lateSeconds"] = _late(r)
            except ApiError:
                f.errors["cursor"] = "this page link is no longer valid; start again"
        return req.render(
            "jobs/runs.html",
            status=400 if f.errors else 200,
            **header(ctx, req, job),
            tab="runs",
            f=f,
            rows=rows,
            next_query=f.query_string(cursor=nxt) if nxt else "",
            all_states=states.ALL,
            all_triggers=states.TRIGGERS,
            first_page=not req.request.query.get("cursor"),
        )

    @root.get("/jobs/<job_id>/events")
    @page(ctx)
    def events_tab(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        q = req.request.query
        chosen = tuple(t for t in q.getall("type") if t in jobevents.TYPES)
        before = None
        if q.get("before"):
            try:
                before = history._absolute(q.get("before"), "0")
            except ValueError:
                raise ApiError(400, "before: not a time; use the page links") from None
        found = ctx.database.read(jobevents.job_events, job.id, chosen, before, EVENTS_PAGE)
        more = ""
        if found["nextBefore"]:
            more = urlencode([("type", t) for t in chosen] + [("before", found["nextBefore"])])
        return req.render(
            "jobs/events.html",
            **header(ctx, req, job),
            tab="events",
            events=found["items"],
            chosen=chosen,
            type_labels=TYPE_LABELS,
            more_query=more,
            first_page=before is None,
        )
