"""The run-history Gantt page (`/history`), its JSON (`/history/data.json`), its table view.

The filters live in the URL (shareable, the back button works) and are read here
the same way for the page, the chart's JSON and the table: a relative range
(`24h`, `-2h`) or an absolute one (`from`/`to`, datetime-local in the display zone
with its offset `tzo`, or RFC 3339), run length `min`/`max`, a job name pattern,
tags that must all match, states and triggers. A bad value is reported per field:
on the page beside the field, in the JSON as the API's error shape, so the
chart's script can show it and keep the chart it has. The chart itself is drawn
by `static/gantt.js` (ECharts' canvas custom series) from `itinerary.gantt`'s compact arrays.

The JSON (~40 ms for a day of 1,000 jobs) is kept `DATA_TTL_S` per query string and job
generation (`itinerary/briefcache.py`): every open page polls it. A poll's
`updated_after` is part of the key and the answer's `cursor` is the newest change it
saw, so a change made after a cached answer was computed comes with the next poll that
follows it: late by at most `DATA_TTL_S`, never lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import bottle

from itinerary import gantt, jobcache, queries, states
from itinerary.briefcache import BriefCache
from itinerary.context import Context
from itinerary.durations import parse_duration
from itinerary.errors import ApiError
from itinerary.web import render
from itinerary.web.pipeline import Req, page

QUICK_RANGES = ("5m", "1h", "6h", "24h", "7d")
DEFAULT_RANGE = "24h"
MAX_RANGE = timedelta(days=90)
TABLE_PAGE = 50
DATA_TTL_S = 2.0
KEYS = ("range", "from", "to", "tzo", "min", "max", "name", "tags", "state", "trigger")


@dataclass
class Filters:
    """What the URL asks for: the raw values (to refill the form) and the parsed ones."""

    given: dict[str, Any]
    start: datetime
    end: datetime
    relative: bool
    errors: dict[str, str] = field(default_factory=dict)
    min_duration: float | None = None
    max_duration: float | None = None
    tags: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()

    def gantt(self, updated_after: datetime | None = None) -> gantt.GanttFilter:
        return gantt.GanttFilter(
            start=self.start,
            end=self.end,
            name=self.given["name"] or None,
            tags=self.tags,
            status=self.states,
            triggers=self.triggers,
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            updated_after=updated_after,
        )

    def query_string(self, *, drop: tuple[str, ...] = (), **extra: str) -> str:
        pairs = [(k, v) for k in KEYS if k not in drop for v in _as_list(self.given[k]) if v]
        return urlencode(pairs + [(k, v) for k, v in extra.items() if v])

    def quick_links(self, view: str) -> list[tuple[str, str]]:
        """(span, query) for the quick range buttons: the other filters kept."""
        table = "table" if view == "table" else ""
        return [
            (q, self.query_string(drop=("range", "from", "to"), range=q, view=table))
            for q in QUICK_RANGES
        ]


def _as_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _many(query: Any, name: str) -> list[str]:
    return [p.strip() for v in query.getall(name) for p in v.split(",") if p.strip()]


def _relative(text: str) -> timedelta:
    """`24h`, `-2h`, `30m`: how far back the range starts."""
    try:
        seconds = parse_duration(text.strip().lstrip("-").strip())
    except ValueError:
        raise ValueError("give a span such as 5m, 1h, 24h, 7d or -2h") from None
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    if seconds > MAX_RANGE.total_seconds():
        raise ValueError("at most 90d")
    return timedelta(seconds=seconds)


def _absolute(text: str, tzo: str) -> datetime:
    """datetime-local text in the display zone (`tzo`: minutes to add for UTC), or RFC 3339."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("give a date and time, e.g. 2026-12-06T12:00") from None
    if at.tzinfo is not None:
        return at.astimezone(UTC)
    minutes = int(tzo) if re.fullmatch(r"-?[0-9]{1,4}", tzo or "") else 0
    return (at + timedelta(minutes=minutes)).replace(tzinfo=UTC)


def read_filters(query: Any, now: datetime, default_range: str = DEFAULT_RANGE) -> Filters:
    """The URL's filters, parsed; every bad one named in `errors`."""
    given: dict[str, Any] = {k: (query.getunicode(k) or "").strip()[:200] for k in KEYS}
    given["state"] = _many(query, "state")
    given["trigger"] = _many(query, "trigger")
    errors: dict[str, str] = {}
    start, end, relative = now - timedelta(hours=24), now, True
    if given["from"] or given["to"]:
        relative = False
        try:
            start = _absolute(given["from"], given["tzo"]) if given["from"] else now - MAX_RANGE
        except ValueError as exc:
            errors["from"] = str(exc)
        try:
            end = _absolute(given["to"], given["tzo"]) if given["to"] else now
        except ValueError as exc:
            errors["to"] = str(exc)
        if not errors and start >= end:
            errors["to"] = "must be after from"
        elif not errors and end - start > MAX_RANGE:
            errors["from"] = "the range may span at most 90d"
    else:
        try:
            start = now - _relative(given["range"] or default_range)
        except ValueError as exc:
            errors["range"] = str(exc)
    f = Filters(given, start, end, relative, errors)
    for key in ("min", "max"):
        if given[key]:
            try:
                setattr(f, f"{key}_duration", parse_duration(given[key]))
            except ValueError as exc:
                errors[key] = str(exc)
    if f.min_duration is not None and f.max_duration is not None:
        if f.min_duration > f.max_duration:
            errors["max"] = "must not be shorter than the minimum"
    f.tags = tuple(dict.fromkeys(t.strip() for t in given["tags"].split(",") if t.strip()))
    if len(f.tags) > 20:
        errors["tags"] = "at most 20 tags"
    bad = [s for s in given["state"] if s not in states.ALL]
    if bad:
        errors["state"] = f"{', '.join(bad)} not known; choose from {', '.join(states.ALL)}"
    f.states = tuple(given["state"])
    bad = [t for t in given["trigger"] if t not in states.TRIGGERS]
    if bad:
        errors["trigger"] = f"{', '.join(bad)} not known; choose from {', '.join(states.TRIGGERS)}"
    f.triggers = tuple(given["trigger"])
    return f


def _json(body: dict[str, Any] | str, status: int = 200) -> bottle.HTTPResponse:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return bottle.HTTPResponse(
        body=text,
        status=status,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


def _table(ctx: Context, f: Filters, cursor: str | None, now: datetime) -> tuple[list, str | None]:
    run_filter = queries.RunFilter(
        name=f.given["name"] or None,
        tags=f.tags,
        status=f.states,
        triggers=f.triggers,
        scheduled_from=f.start,
        scheduled_to=f.end,
        min_duration=f.min_duration,
        max_duration=f.max_duration,
        limit=TABLE_PAGE,
        cursor=cursor,
    )
    page_ = json.loads(str(ctx.database.read(queries.list_runs, run_filter, now)))
    return page_["items"], page_.get("nextCursor")


def install(root: bottle.Bottle, ctx: Context) -> None:
    answers = BriefCache(DATA_TTL_S)

    def chart_data(f: Filters, updated_after: datetime | None, now: datetime) -> str:
        body = gantt.compute(ctx.database, f.gantt(updated_after), now)
        body["relative"] = f.relative
        return json.dumps(body, separators=(",", ":"))

    @root.get("/history")
    @page(ctx)
    def history(req: Req) -> Any:
        f = read_filters(req.request.query, req.now)
        view = "table" if req.request.query.get("view") == "table" else "chart"
        rows: list[dict[str, Any]] = []
        next_query = ""
        if view == "table" and not f.errors:
            cursor = req.request.query.get("cursor") or None
            try:
                rows, nxt = _table(ctx, f, cursor, req.now)
            except ApiError:  # a stale or forged cursor: say so beside the table
                f.errors["cursor"] = "this page link is no longer valid; start again"
                nxt = None
            next_query = f.query_string(view="table", cursor=nxt or "") if nxt else ""
        body = render.render(
            "history/index.html",
            **req.base(
                f=f,
                view=view,
                rows=rows,
                next_query=next_query,
                quick=QUICK_RANGES,
                all_states=states.ALL,
                all_triggers=states.TRIGGERS,
                chart_query=f.query_string(),
                table_query=f.query_string(view="table"),
                cap=gantt.CAP,
                page_size=TABLE_PAGE,
                first_page=not req.request.query.get("cursor"),
                job_zones=ctx.database.read(gantt.job_zones, f.given["name"], f.tags),
            ),
        )
        return render.html(body, 400 if f.errors else 200)

    @root.get("/history/data.json")
    @page(ctx)
    def data(req: Req) -> Any:
        f = read_filters(req.request.query, req.now)
        updated_after = None
        raw = req.request.query.get("updated_after") or ""
        if raw:
            if not re.fullmatch(r"[0-9]{1,15}", raw):
                f.errors["updated_after"] = "must be a cursor from a previous answer (ms)"
            else:
                updated_after = datetime.fromtimestamp(int(raw) / 1000, UTC)
        if f.errors:
            message = "; ".join(f"{k}: {v}" for k, v in f.errors.items())
            error = {"code": "invalid", "message": message, "fields": f.errors}
            return _json({"error": error}, 400)
        key = (tuple(sorted(req.request.query.allitems())), jobcache.generation())
        return _json(
            answers.get(key, req.now.timestamp(), chart_data, f, updated_after, req.now)[1]
        )
