"""P4, the job list: search, the job-level status filter, cursor pages, live rows.

A row's status (and what the status filter picks) is the job page header's
(`jobs.status_of`). Archived and paused come from the job row, so those filters
are SQL. Running, behind, failing, skipped, healthy and new depend on the job's latest
run: the list reads jobs in name order a chunk at a time with each chunk's
latest runs (one index seek per job, `reads.last_runs`), keeps the matches, and
stops at a full page or after SCAN_CAP jobs. A page cut short says so, and its
"Next page" goes on from where the scan stopped: bounded work per request, and
no derived status column to keep in step with every run update.

`_rows` (the table body) is polled every 15 s with the same query; it answers
204 while each row's job, status, last run and next run are unchanged.

At 50 requests/s a page's reads and its 50 rendered rows (~60 ms) are more than one
process has, so the rows' HTML is kept `LIST_TTL_S` (`itinerary/briefcache.py`), keyed by
the query, the cursor, the visitor's role (which buttons show) and the job generation
(an edit or pause shows at once). Its last runs are read fresh (`reads.last_runs` with
`max_age_s=0`), so a page is at most `LIST_TTL_S` old. The visitor's CSRF token is put
into the cached HTML per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import bottle
import gevent
from markupsafe import Markup

from itinerary import jobcache, jobfiles, queries
from itinerary.briefcache import BriefCache
from itinerary.context import Context
from itinerary.errors import invalid
from itinerary.jobs import JobSpec
from itinerary.web import reads
from itinerary.web import render as html
from itinerary.web.jobs import describe, next_run, run_status, status_of
from itinerary.web.pipeline import Req, page

PAGE_SIZES = (25, 50, 100, 500)
STATUSES = ("running", "behind", "failing", "skipped", "healthy", "new", "paused", "archived")
FROM_RUNS = frozenset(("running", "behind", "failing", "skipped", "healthy", "new"))
SCAN_CAP = 1000  # jobs looked at per request for a status that depends on the last run
SCAN_CHUNK = 200
LIST_TTL_S = 5.0
CSRF_MARK = secrets.token_urlsafe(32)  # the cached rows' stand-in for the visitor's token


@dataclass
class ListPage:
    rows: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None  # the next page's
    scanned: int | None = None  # set when the scan stopped at SCAN_CAP before a full page


def list_filter(req: Req) -> tuple[queries.JobFilter, dict[str, str]]:
    """The list's query string as a filter, and as given (for the form and the links)."""
    q = req.request.query
    size = int(q.get("limit")) if (q.get("limit") or "").isdigit() else 50
    size = size if size in PAGE_SIZES else 50
    status = q.get("status", "")
    if status and status not in STATUSES:
        raise invalid({"status": f"must be one of {', '.join(STATUSES)}"})
    given = {
        "name": q.getunicode("name") or "",
        "tags": q.getunicode("tags") or "",
        "schedule": q.getunicode("schedule") or "",
        "status": status,
        "archived": "1" if q.get("archived") or status == "archived" else "",
        "limit": str(size),
    }
    f = queries.JobFilter(
        name_pattern=given["name"].strip()[:200] or None,
        tags=tuple(t.strip() for t in given["tags"].split(",") if t.strip()),
        schedule=given["schedule"].strip() or None,
        enabled={"paused": False, **dict.fromkeys(FROM_RUNS, True)}.get(status),
        include_archived=bool(given["archived"]) and status not in FROM_RUNS | {"paused"},
        archived_only=status == "archived",
        limit=size,
        cursor=(q.get("cursor") or None),
    )
    return f, given


def _row(job: JobSpec, last: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    return {"job": job, "last": last, "status": status_of(job, last), "next": next_run(job, now)}


def _rows(versions: list[queries.JobVersion], now: datetime) -> list[dict[str, Any]]:
    """One read: each job's latest run, then the rows (status, next run) the table shows."""
    ids = [v.spec.id for v in versions if v.spec.id is not None]
    last = reads.last_runs(ids, now, max_age_s=0)
    return [_row(v.spec, last.get(v.spec.id or 0), now) for v in versions]


def _page(f: queries.JobFilter, now: datetime) -> tuple[list[dict[str, Any]], str | None]:
    versions, cursor = queries.list_jobs(f)
    return _rows(versions, now), cursor


def _kept(ids: list[int], now: datetime) -> list[dict[str, Any]]:
    return _rows(queries.jobs_by_id(ids), now)


def _scan(
    f: queries.JobFilter, status: str, want: int, now: datetime
) -> tuple[list[int], str | None, bool]:
    """Up to `want` ids of jobs in the status from one chunk of `f`; the cursor after what
    was looked at (None at the end), and whether the chunk was used up."""
    keys = queries.job_keys(f)
    more = f.limit is not None and len(keys) > f.limit
    keys = keys[: f.limit]
    last = reads.last_runs([job_id for job_id, _ in keys], now, max_age_s=0)
    kept: list[int] = []
    for n, (job_id, name) in enumerate(keys, 1):
        if run_status(last.get(job_id)) == status:
            kept.append(job_id)
            if len(kept) == want:
                rest = more or n < len(keys)
                return kept, queries.job_cursor(name, job_id) if rest else None, False
    cursor = queries.job_cursor(keys[-1][1], keys[-1][0]) if more else None
    return kept, cursor, True


def read_page(ctx: Context, f: queries.JobFilter, status: str, now: datetime) -> ListPage:
    """A page of rows matching `f` and the status (see the module's note on the scan)."""
    if status not in FROM_RUNS:
        rows, cursor = ctx.database.read(_page, f, now)
        return ListPage(rows, cursor)
    kept: list[int] = []
    cursor, scanned, limit = f.cursor, 0, f.limit or PAGE_SIZES[1]
    stopped_at: int | None = None
    while True:
        size = min(SCAN_CHUNK, SCAN_CAP - scanned)
        chunk = replace(f, limit=size, cursor=cursor)
        found, cursor, used_up = ctx.database.read(_scan, chunk, status, limit - len(kept), now)
        kept += found
        scanned += size
        if not used_up or cursor is None:
            break
        if scanned >= SCAN_CAP:
            stopped_at = scanned
            break
    return ListPage(ctx.database.read(_kept, kept, now), cursor, stopped_at)


def version(rows: list[dict[str, Any]]) -> str:
    """What the polled rows show, as a short hash: equal hash, nothing to send (204)."""
    parts = []
    for r in rows:
        last = r["last"] or {}
        parts.append(
            f"{r['job'].id}:{r['job'].updated_at}:{r['status']}:{last.get('runId')}:"
            f"{last.get('state')}:{last.get('updatedAt')}:{r['next']}"
        )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _query(given: dict[str, str], cursor: str | None) -> str:
    params = {k: v for k, v in given.items() if v}
    if cursor:
        params["cursor"] = cursor
    return urlencode(params)


@dataclass
class Shown:
    """A page of the list as rendered once for every visitor of one role."""

    found: ListPage
    version: str
    rows_html: str  # with CSRF_MARK where the visitor's token goes


def install(root: bottle.Bottle, ctx: Context) -> None:
    shown = BriefCache(LIST_TTL_S)

    def compute(
        f: queries.JobFilter, given: dict[str, str], values: dict[str, Any], now: datetime
    ) -> Shown:
        found = read_page(ctx, f, given["status"], now)
        rows_version = version(found.rows)
        this_page = _query(given, f.cursor)
        rows_html = html.render(
            "jobs/_rows.html",
            **values,
            rows=found.rows,
            rows_query=this_page,
            back_url="/jobs" + (f"?{this_page}" if this_page else ""),
            rows_version=rows_version,
            describe=describe,
        )
        return Shown(found, rows_version, rows_html)

    def render(req: Req, template: str) -> Any:
        f, given = list_filter(req)
        key = (tuple(given.items()), f.cursor, req.visitor.role, jobcache.generation())
        values = {"can": req.visitor.perms, "visitor": replace(req.visitor, csrf=CSRF_MARK)}
        got: Shown = shown.get(key, req.now.timestamp(), compute, f, given, values, req.now)[1]
        if template == "jobs/_rows.html" and req.request.query.get("v") == got.version:
            return bottle.HTTPResponse(status=204)
        rows_html = got.rows_html.replace(CSRF_MARK, req.visitor.csrf)
        if template == "jobs/_rows.html":
            return html.html(rows_html)
        return req.render(
            template,
            rows=got.found.rows,
            rows_html=Markup(rows_html),
            scanned=got.found.scanned,
            given=given,
            statuses=STATUSES,
            next_query=_query(given, got.found.cursor) if got.found.cursor else "",
            export_query=_query({k: v for k, v in given.items() if k != "limit"}, None),
            filtered=any(given[k] for k in ("name", "tags", "schedule", "status")),
            sizes=PAGE_SIZES,
            first_page=not f.cursor,
        )

    @root.get("/jobs")
    @page(ctx)
    def job_list(req: Req) -> Any:
        return render(req, "jobs/index.html")

    @root.get("/jobs/_rows")
    @page(ctx)
    def job_rows(req: Req) -> Any:
        return render(req, "jobs/_rows.html")

    @root.get("/jobs/export.yaml")
    @page(ctx)
    def export(req: Req) -> Any:
        """The jobs the list's filters select (all pages), as `export` writes them."""
        f, given = list_filter(req)
        versions, _ = ctx.database.read(queries.list_jobs, replace(f, limit=None, cursor=None))
        specs = [v.spec for v in versions]
        if given["status"] in FROM_RUNS:
            rows = ctx.database.read(_rows, versions, req.now)
            specs = [r["job"] for r in rows if r["status"] == given["status"]]
        text = gevent.get_hub().threadpool.apply(jobfiles.export_yaml, (specs,))
        return bottle.HTTPResponse(
            body=text,
            headers={
                "Content-Type": "application/yaml; charset=utf-8",
                "Content-Disposition": 'attachment; filename="jobs.yaml"',
                "Cache-Control": "no-store",
            },
        )
