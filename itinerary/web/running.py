"""P2, the landing page: what is running now, what comes next, what just ended.

The cards, upcoming and recent parts are partials polled by htmx. Each carries
a `data-version` of what it shows; a poll sends it back as `?v=` and gets 204
(nothing swapped) when nothing changed, so an idle page costs one cheap read.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import bottle
from markupsafe import Markup

from itinerary import states
from itinerary.context import Context
from itinerary.jobs import JobSpec
from itinerary.web import reads, render
from itinerary.web.pipeline import Req, page

FRAGMENT_TTL_S = 5.0
CSRF_SLOT = "@@csrf@@"  # replaced by each visitor's token in a shared rendering
_fragments: dict[tuple[Any, ...], tuple[float, str]] = {}


def max_attempts(job: JobSpec | None) -> int | None:
    """1 + the retries an on_failure retry action allows (None: unknown job)."""
    if job is None:
        return None
    for action in job.actions:
        if action.type == "retry" and action.trigger == "on_failure":
            return 1 + int(action.config.get("maxRetries", 1))
    return 1


def _card(
    run: dict[str, Any], job: JobSpec | None, median: float | None, now: datetime
) -> dict[str, Any]:
    started = reads_time(run["startedAt"])
    scheduled = reads_time(run["scheduledAt"])
    late = (started - scheduled).total_seconds() if started and scheduled else None
    elapsed = (now - started).total_seconds() if started else None
    allowed = job.seconds("maxAllowedRunTime") if job else None
    return {
        "run": run,
        "job": job,
        "late": late if late is not None and late >= 1 else None,
        "elapsed": elapsed,
        "median": median,
        "progress": min(elapsed / median, 1.0) if median and elapsed is not None else None,
        "kill_at": started + timedelta(seconds=allowed) if started and allowed else None,
        "attempts": max_attempts(job),
    }


def reads_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _summary(active: list[dict[str, Any]], hour: dict[str, int], today: dict[str, int]) -> Any:
    finished = sum(
        today.get(s, 0) for s in (states.SUCCEEDED, states.FAILED, states.KILLED, states.LOST)
    )
    by_state = {s: sum(1 for r in active if r["state"] == s) for s in states.ACTIVE}
    return {
        "running": by_state[states.RUNNING],
        "waiting": by_state[states.WAITING] + by_state[states.SCHEDULED],
        "starting": by_state[states.STARTING],
        "hour": hour,
        "success_rate": None if not finished else today.get(states.SUCCEEDED, 0) / finished,
    }


def cards(req: Req) -> tuple[Markup, str]:
    """The cards partial (summary strip and a card per active run) and its version.

    The rendered HTML is kept for a few seconds per version and role: with 200 active
    runs, rendering takes ~40 ms and every open running page asks for it every 5 s. The
    visitor's CSRF token is put in after, so one rendering serves every visitor.
    """
    now = req.now

    def read() -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
        return (
            reads.active_runs(now),
            reads.ended_counts(now - timedelta(hours=1)),
            reads.ended_today(now),
        )

    runs, hour, today = req.ctx.database.read(read)
    version = reads.version(runs) + format(
        hash((tuple(sorted(hour.items())), tuple(sorted(today.items())))) & 0xFFFF, "04x"
    )
    key = (version, tuple(sorted(req.visitor.perms.items())))
    clock_s = now.timestamp()
    hit = _fragments.get(key)
    if hit is None or clock_s - hit[0] > FRAGMENT_TTL_S:

        def more() -> tuple[dict[int, JobSpec], dict[int, float | None]]:
            jobs = reads.jobs_by_id(r["jobId"] for r in runs)
            return jobs, {j: reads.median_duration(j, clock_s) for j in jobs}

        jobs, medians = req.ctx.database.read(more)
        built = [_card(r, jobs.get(r["jobId"]), medians.get(r["jobId"]), now) for r in runs]
        html = render.render(
            "running/_cards.html",
            **req.base(
                visitor=replace(req.visitor, csrf=CSRF_SLOT),
                cards=built,
                version=version,
                summary=_summary(runs, hour, today),
            ),
        )
        if len(_fragments) > 64:
            _fragments.clear()
        hit = _fragments[key] = (clock_s, html)
    return Markup(hit[1].replace(CSRF_SLOT, req.visitor.csrf)), version


def upcoming(ctx: Context, now: datetime) -> tuple[list[tuple[datetime, JobSpec]], str]:
    found = ctx.database.read(reads.upcoming, now, now.timestamp())
    text = "|".join(f"{t.isoformat()}:{j.id}" for t, j in found)
    return found, str(hash(text) & 0xFFFFFFFF)


def recent(ctx: Context, now: datetime) -> tuple[list[dict[str, Any]], str]:
    runs = ctx.database.read(reads.recent_runs, now)
    return runs, reads.version(runs)


def _unchanged(req: Req, version: str) -> bool:
    return req.request.query.get("v") == version


def install(root: bottle.Bottle, ctx: Context) -> None:
    @root.get("/running")
    @page(ctx)
    def running(req: Req) -> Any:
        cards_html, _ = cards(req)
        soon, soon_version = upcoming(ctx, req.now)
        ended, ended_version = recent(ctx, req.now)
        return req.render(
            "running/index.html",
            cards_html=cards_html,
            upcoming=soon,
            upcoming_version=soon_version,
            recent=ended,
            recent_version=ended_version,
        )

    @root.get("/running/_cards")
    @page(ctx)
    def running_cards(req: Req) -> Any:
        cards_html, version = cards(req)
        if _unchanged(req, version):
            return bottle.HTTPResponse(status=204)
        return render.html(str(cards_html))

    @root.get("/running/_upcoming")
    @page(ctx)
    def running_upcoming(req: Req) -> Any:
        soon, version = upcoming(ctx, req.now)
        if _unchanged(req, version):
            return bottle.HTTPResponse(status=204)
        return req.render("running/_upcoming.html", upcoming=soon, upcoming_version=version)

    @root.get("/running/_recent")
    @page(ctx)
    def running_recent(req: Req) -> Any:
        ended, version = recent(ctx, req.now)
        if _unchanged(req, version):
            return bottle.HTTPResponse(status=204)
        return req.render("running/_recent.html", recent=ended, recent_version=version)
