"""Routes that are neither jobs nor runs: schedule preview, stats, the OpenAPI document.

The preview uses `itinerary.cron.Schedule.next_n`, the computation the
scheduler itself uses, so what a user previews is what will run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from itinerary import queries
from itinerary.api import params
from itinerary.api.routing import Call, Route
from itinerary.cron import CronError, Schedule
from itinerary.errors import invalid
from itinerary.jsontext import iso

PREVIEW_KEYS = ("schedule", "timezone", "count", "from")
STATS_WINDOW_MAX = timedelta(days=400)


def preview(call: Call) -> Any:
    body = call.body
    if not isinstance(body, dict):
        raise invalid({"body": "must be a JSON object"})
    errors = {k: "unknown field" for k in sorted(set(body) - set(PREVIEW_KEYS))}
    expr, tz, count = body.get("schedule"), body.get("timezone", "UTC"), body.get("count", 5)
    if not isinstance(expr, str) or not expr.strip():
        errors["schedule"] = "a cron expression is required"
    if not isinstance(tz, str):
        errors["timezone"] = "must be an IANA timezone name"
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100:
        errors["count"] = "must be a whole number from 1 to 100"
    after = call.now
    if body.get("from") is not None:
        try:
            if not isinstance(body["from"], str):
                raise ValueError("must be a string")
            after = params.parse_time(body["from"], call.now)
        except ValueError as exc:
            errors["from"] = str(exc)
    if errors:
        raise invalid(errors)
    try:
        schedule = Schedule(str(expr), tz)
    except CronError as exc:
        raise invalid({exc.field: exc.reason}) from None
    return {
        "description": schedule.describe(),
        "nextRuns": [iso(t) for t in schedule.next_n(after, count)],
    }


def stats(call: Call) -> Any:
    since = call.query["from"] or call.now - timedelta(hours=24)
    until = call.query["to"] or call.now
    if since >= until:
        raise invalid({"from": "must be before 'to'"})
    if until - since > STATS_WINDOW_MAX:
        raise invalid({"from": "the window may be at most 400 days"})
    return call.ctx.database.read(queries.stats, since, until)


ROUTES = (
    Route(
        "POST",
        "/schedule/preview",
        preview,
        "viewer",
        "Describe a cron expression and list its next times",
        "schedule",
        response="SchedulePreview",
        body="SchedulePreviewInput",
    ),
    Route(
        "GET",
        "/stats",
        stats,
        "viewer",
        "Run counts by state and component statistics over a window",
        "stats",
        response="Stats",
        params=(
            params.time("from", "window start (default 24 hours ago)"),
            params.time("to", "window end (default now)"),
        ),
    ),
)
