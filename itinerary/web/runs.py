"""P9, the run page: what happened to one run, its output, and cancelling it.

`_status` (header, facts, attempts, violations, actions) and `_logs` (the
tail of the chosen attempt's output) are polled while the run is active; a
partial rendered for a finished run carries no `data-poll`, so polling stops.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

import bottle

from itinerary import history, jobstore, operations, queries, states
from itinerary.context import Context
from itinerary.errors import not_found
from itinerary.executors.base import ExecutorError
from itinerary.ids import is_run_id
from itinerary.web import reads
from itinerary.web.pipeline import Req, page, see_other
from itinerary.web.running import max_attempts, reads_time

LOG_LINES = 200
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def load(ctx: Context, run_id: str, now: datetime) -> dict[str, Any]:
    if not is_run_id(run_id):
        raise not_found(f"run {run_id!r}")

    def read() -> dict[str, Any] | None:
        run = queries.get_run(run_id, now)
        if run is None:
            return None
        return {
            "run": run,
            "job": jobstore.get_job(run["jobId"]),
            "violations": queries.violations(run_id),
            "actions": queries.actions(run_id),
            "children": reads.child_runs(run_id, now),
            "anomalies": history.anomalies_of_run(run_id),
        }

    found = ctx.database.read(read)
    if found is None:
        raise not_found(f"run {run_id}")
    run, job = found["run"], found["job"]
    started, scheduled = reads_time(run["startedAt"]), reads_time(run["scheduledAt"])
    late = (started - scheduled).total_seconds() if started and scheduled else None
    found.update(
        active=run["state"] in states.ACTIVE,
        late=late if late is not None and late >= 1 else None,
        attempts_max=max_attempts(job),
        expected=job.constraints.get("maxExpectedRunTime") if job else None,
        allowed=job.constraints.get("maxAllowedRunTime") if job else None,
        version=hashlib.sha256(
            f"{run['state']}{run['updatedAt']}{len(found['violations'])}"
            f"{len(found['actions'])}".encode()
        ).hexdigest()[:16],
    )
    return found


def logs(ctx: Context, run: dict[str, Any], attempt: int | None) -> dict[str, Any]:
    """The tail of an attempt's output, or why there is none."""
    number = attempt or run["attempt"]
    handle = run["handle"]
    if number != run["attempt"]:
        handle = next((a["handle"] for a in run["attempts"] if a["attempt"] == number), None)
    out: dict[str, Any] = {"attempt": number, "text": "", "note": ""}
    if handle is None:
        out["note"] = "No output yet: this attempt has not started."
    elif ctx.executor is None:
        out["note"] = "No executor is configured to read logs from."
    else:
        try:
            out["text"] = ANSI.sub("", ctx.executor.logs(handle, LOG_LINES))
        except ExecutorError as exc:
            out["note"] = f"Logs are not available: {exc}"
        if not out["text"] and not out["note"]:
            out["note"] = "No output yet."
    out["version"] = hashlib.sha256((out["text"] + out["note"]).encode()).hexdigest()[:16]
    return out


def _attempt(req: Req) -> int | None:
    raw = req.request.query.get("attempt", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1000 else None


def install(root: bottle.Bottle, ctx: Context) -> None:
    @root.get("/runs/<run_id>")
    @page(ctx)
    def run_page(req: Req, run_id: str) -> Any:
        found = load(ctx, run_id, req.now)
        output = logs(ctx, found["run"], _attempt(req))
        return req.render("runs/show.html", logs=output, **found)

    @root.get("/runs/<run_id>/_status")
    @page(ctx)
    def run_status(req: Req, run_id: str) -> Any:
        found = load(ctx, run_id, req.now)
        if req.request.query.get("v") == found["version"]:
            return bottle.HTTPResponse(status=204)
        return req.render("runs/_status.html", **found)

    @root.get("/runs/<run_id>/_logs")
    @page(ctx)
    def run_logs(req: Req, run_id: str) -> Any:
        found = load(ctx, run_id, req.now)
        output = logs(ctx, found["run"], _attempt(req))
        if req.request.query.get("v") == output["version"] and found["active"]:
            return bottle.HTTPResponse(status=204)
        return req.render("runs/_logs.html", logs=output, **found)

    @root.post("/runs/<run_id>/cancel")
    @page(ctx, "operator", write=True)
    def cancel(req: Req, run_id: str) -> Any:
        if not is_run_id(run_id):
            raise not_found(f"run {run_id!r}")
        reason = f"cancelled in the web UI by {req.visitor.name}"
        operations.cancel_run(ctx, run_id, reason, req.now)
        return see_other(
            f"/runs/{run_id}", f"Cancelling run {run_id}: the workload is being killed."
        )
