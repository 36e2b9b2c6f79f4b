"""A job's history pages: overview (`/jobs/{id}`), its runs and its events, as tabs.

The overview shows the statistics of `itinerary.jobstats` as tiles for a window
(24 h, 7 d, 30 d), the two charts (`static/charts.js` draws them with uPlot from
`/jobs/{id}/charts.json`, with the same numbers as a table beside each), the last
60 slots as a strip with the reason of each skipped or missed one, the next runs,
recent runs and the alerts sent. The Runs tab filters like /history; the Events
tab pages `itinerary.jobevents` back in time. The Definition tab is part 1's page.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import bottle
import gevent
from markupsafe import Markup

from itinerary import audit, jobevents, jobpage, jobstats, operations, queries, states
from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.jobs import JobSpec
from itinerary.web import history, jobfigures, reads, render
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


TAB_PATHS = {"overview": "", "runs": "/runs", "events": "/events"}
VERSION_SLOT = "@@version@@"


def header(ctx: Context, req: Req, job: JobSpec, tab: str, polled: bool = False) -> dict[str, Any]:
    """What every tab's header shows (jobs/_status.html), with its version."""
    last = ctx.database.read(reads.last_runs, [job.stored_id], req.now).get(job.stored_id)
    following = next_run(job, req.now)
    values = {
        "job": job,
        "tab": tab,
        "last": last,
        "job_status": status_of(job, last),
        "next": following,
        "next_local": in_zone(following, job.timezone) if following else "",
        "paused": _paused(ctx, job),
        "back": f"/jobs/{job.id}{TAB_PATHS[tab]}",
    }

    def html(polled: bool) -> str:
        slot = dict(status_version=VERSION_SLOT, polled=polled)
        return render.render("jobs/_status.html", **req.base(**values, **slot))

    page = html(False)  # the version: of what the page shows
    out = (html(True) if polled else page).replace(VERSION_SLOT, _hash(page))
    return {**values, "status_version": _hash(page), "status_html": Markup(out)}


def _paused(ctx: Context, job: JobSpec) -> dict[str, Any] | None:
    """When and by whom a paused job was paused (its latest `paused` audit record)."""
    if job.enabled or job.archived_at:
        return None
    entries = ctx.database.read(audit.of_job, job.id, None, 20)
    return next((e for e in entries if e["action"] == "paused"), None)


def _hash(value: Any) -> str:
    """A polled fragment's version: equal versions, nothing to send (204)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unchanged(req: Req, version: str) -> bool:
    return req.request.query.get("v") == version


def _partial(req: Req, version: str, template: str, **values: Any) -> Any:
    """A polled fragment: 204 when the poll's `v` is its version (htmx swaps nothing)."""
    if _unchanged(req, version):
        return bottle.HTTPResponse(status=204)
    return req.render(template, **values)


def _feed(items: list[dict[str, Any]], chosen: tuple[str, ...], since: str) -> dict[str, Any]:
    """The events feed's first page, the events newer than `since` (what the page showed
    before this poll) marked new, and the query of the next poll."""
    version = _hash(items)
    newest = items[0]["at"] if items else since
    query = [("type", t) for t in chosen] + [("since", newest), ("v", version)]
    return {
        "events": items,
        "fresh": {e["at"] for e in items if since and e["at"] > since},
        "feed_version": version,
        "feed_query": urlencode(query),
    }


def _tiles_version(stats: dict[str, Any]) -> str:
    return _hash({k: v for k, v in stats.items() if k not in ("from", "to")})


def _zone(req: Req) -> str:
    zone = req.request.query.get("zone") or "UTC"
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ApiError(400, f"zone: {zone!r} is not an IANA time zone") from None
    return zone


def _next_runs(job: JobSpec, now: datetime) -> list[tuple[datetime, str, str]]:
    """The next 10 fire times, each also as text in the job's zone, and a note on the
    first after the zone's clocks change (a DST gap or fold shifts or skips runs)."""
    if not (job.cron and job.enabled and not job.archived_at):
        return []
    zone = ZoneInfo(job.timezone)
    out, before = [], now.astimezone(zone).utcoffset()
    for at in job.cron.next_n(now, 10):
        offset = at.astimezone(zone).utcoffset()
        note = f"clocks change before this run ({_utc_offset(before)} → {_utc_offset(offset)})"
        out.append((at, in_zone(at, job.timezone), note if offset != before else ""))
        before = offset
    return out


def _utc_offset(offset: Any) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


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


def _chart_part(charts: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of the charts: their JSON, summary and data table (~10 ms for
    30 days of hours), derived once per computation of the figures they come from."""
    table = render.render(
        "jobs/_slot_rows.html", slot_rows=_slot_rows(charts), stacked=jobpage.STACKED
    )
    return {
        "charts_json": script_json(charts),
        "chart_summary": _chart_summary(charts),
        "slot_table": Markup(table),
    }


def install(root: bottle.Bottle, ctx: Context) -> None:
    figures = jobfigures.Figures(ctx)
    parts: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}

    def chart_part(key: tuple[Any, ...], charts: dict[str, Any]) -> dict[str, Any]:
        """`_chart_part`, reused while the figures' cache hands out the same charts."""
        hit = parts.get(key)
        if hit is None or hit[0] is not charts:
            if len(parts) >= jobfigures.Figures.MAX_ENTRIES:
                parts.clear()
            hit = parts[key] = (charts, _chart_part(charts))
        return hit[1]

    @root.get("/jobs/<job_id>")
    @page(ctx)
    def overview(req: Req, job_id: str) -> Any:
        jid = job_id_of(job_id)
        job = operations.load_job(ctx, jid)
        window = _window(req)
        # The two are independent reads (each with its arithmetic in the thread pool):
        # together, a page whose figures expired waits for the slower one, not both.
        both = [
            gevent.spawn(figures.stats, jid, window, req.now),
            gevent.spawn(figures.charts, jid, window, req.now, job.timezone),
        ]
        strip = ctx.database.read(jobpage.slot_strip, job.id, req.now)
        gevent.joinall(both, raise_error=True)
        (computed, stats), charts = both[0].value, both[1].value
        alerts = ctx.database.read(jobevents.job_events, job.id, ("delivery",), None, 5)
        return req.render(
            "jobs/show.html",
            **header(ctx, req, job, "overview"),
            window=window,
            windows=tuple(jobstats.WINDOWS),
            stats=stats,
            computed=computed,
            charts=charts,
            **chart_part((jid, window, job.timezone), charts),
            constraints={
                "expected": job.seconds("maxExpectedRunTime"),
                "allowed": job.seconds("maxAllowedRunTime"),
            },
            strip=strip,
            strip_version=_hash(strip),
            tiles_version=_tiles_version(stats),
            next_runs=_next_runs(job, req.now),
            recent=ctx.database.read(reads.job_runs, job.id, req.now),
            alerts=alerts["items"],
            stacked=jobpage.STACKED,
        )

    @root.get("/jobs/<job_id>/charts.json")
    @page(ctx)
    def charts_json(req: Req, job_id: str) -> Any:
        jid = job_id_of(job_id)
        operations.load_job(ctx, jid)  # 404 for an unknown job
        data = figures.charts(jid, _window(req), req.now, _zone(req))
        return bottle.HTTPResponse(
            body=json.dumps(data, separators=(",", ":")),
            headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
        )

    @root.get("/jobs/<job_id>/_status")
    @page(ctx)
    def status_partial(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        tab = req.request.query.get("tab") or "overview"
        if tab not in TAB_PATHS:
            raise ApiError(400, f"tab must be one of {', '.join(TAB_PATHS)}")
        values = header(ctx, req, job, tab, polled=True)
        if _unchanged(req, values["status_version"]):
            return bottle.HTTPResponse(status=204)
        return render.html(values["status_html"])

    @root.get("/jobs/<job_id>/_tiles")
    @page(ctx)
    def tiles_partial(req: Req, job_id: str) -> Any:
        jid = job_id_of(job_id)
        job = operations.load_job(ctx, jid)
        window = _window(req)
        computed, stats = figures.stats(jid, window, req.now)
        version = _tiles_version(stats)
        return _partial(
            req,
            version,
            "jobs/_tiles.html",
            job=job,
            window=window,
            windows=tuple(jobstats.WINDOWS),
            stats=stats,
            computed=computed,
            tiles_version=version,
            last=ctx.database.read(reads.last_runs, [jid], req.now).get(jid),
            next_runs=_next_runs(job, req.now)[:1],
        )

    @root.get("/jobs/<job_id>/_strip")
    @page(ctx)
    def strip_partial(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        strip = ctx.database.read(jobpage.slot_strip, job.id, req.now)
        version = _hash(strip)
        return _partial(
            req,
            version,
            "jobs/_strip.html",
            job=job,
            strip=strip,
            strip_version=version,
            constraints={"allowed": job.seconds("maxAllowedRunTime")},
        )

    @root.get("/jobs/<job_id>/_events")
    @page(ctx)
    def events_partial(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        q = req.request.query
        chosen = tuple(t for t in q.getall("type") if t in jobevents.TYPES)
        found = ctx.database.read(jobevents.job_events, job.id, chosen, None, EVENTS_PAGE)
        values = _feed(found["items"], chosen, q.get("since") or "")
        return _partial(
            req,
            values["feed_version"],
            "jobs/_events_feed.html",
            job=job,
            **values,
            chosen=chosen,
            type_labels=TYPE_LABELS,
            first_page=True,
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
            **header(ctx, req, job, "runs"),
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
            **header(ctx, req, job, "events"),
            **_feed(found["items"], chosen, ""),
            chosen=chosen,
            type_labels=TYPE_LABELS,
            more_query=more,
            first_page=before is None,
        )
