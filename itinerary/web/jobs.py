"""Job pages: one job's definition (P6), new/edit (P7), and the pause/resume/archive
buttons (the list, P4, is in joblist.py; manual runs, P8, in manual.py).

Writes go through `itinerary.operations`, as the API's do. A form that does not
validate answers 422 with the same form and every error beside its field,
nothing saved; an edit of a job that changed since the form was opened answers
409 with the differences.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import bottle

from itinerary import jobfiles, operations
from itinerary.context import Context
from itinerary.cron import CronError, Schedule
from itinerary.errors import ApiError, not_found
from itinerary.jobs import JobSpec, ValidationError, parse_job
from itinerary.web import formrows, forms, reads
from itinerary.web.pipeline import Req, page, see_other
from itinerary.webhooks import store

MAX_ID = 2**63 - 1
SENTENCES = {
    "maxConcurrentRuns": "At most {v} run(s) at a time; others are skipped",
    "catchUp": "Catch up on missed slots: {v}",
    "catchUpWindow": "Missed slots are started if at most {v} late",
    "maxExpectedRunTime": "Behind schedule after {v}",
    "maxAllowedRunTime": "Killed after {v}",
    "preRunHook": "Before each run: {v}",
    "postRunHook": "After each run: {v}",
    "requirePreviousSuccess": "Runs only after the previous run succeeded: {v}",
}


def job_id_of(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", text) or not 0 < int(text) <= MAX_ID:
        raise not_found(f"job {text!r}")
    return int(text)


def _see(location: str, flash: str = "") -> bottle.HTTPResponse:
    return see_other(location, flash)


def status_of(job: JobSpec, last: dict[str, Any] | None) -> str:
    """The job-level badge: archived, paused, running, failing, behind, skipped, healthy or new."""
    if job.archived_at is not None:
        return "archived"
    if not job.enabled:
        return "paused"
    return run_status(last)


def run_status(last: dict[str, Any] | None) -> str:
    """A live, enabled job's badge, from its latest run: running, behind, failing, skipped
    (it did not run: a constraint, an overlap or an operator said so), healthy or new (the
    job list's status filter scans these without reading whole jobs)."""
    if last is None:
        return "new"
    if last["state"] in ("running", "starting", "waiting", "scheduled"):
        return "behind" if last["behindSchedule"] else "running"
    if last["state"] in ("failed", "killed", "missed", "lost"):
        return "failing"
    if last["state"] == "skipped":
        return "skipped"
    return "healthy"


@lru_cache(maxsize=4096)
def describe(schedule: str, timezone: str) -> str:
    """A schedule in words (cronsim's explain() takes ~0.3 ms; the list shows 50 a page)."""
    return Schedule(schedule, timezone).describe()


def next_run(job: JobSpec, now: datetime) -> datetime | None:
    if not job.enabled or job.archived_at is not None or job.cron is None:
        return None
    return job.cron.next_after(now)


def sentences(constraints: dict[str, Any]) -> list[str]:
    """The constraints in words (pass them masked: `JobSpec.public_dict`)."""
    out = []
    for key, value in constraints.items():
        shown = value if isinstance(value, str | int | bool) else forms._yaml_dump(value).strip()
        out.append(SENTENCES.get(key, key + ": {v}").format(v=shown))
    return out


def _form_page(
    req: Req,
    job: JobSpec | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
    conflict: list[tuple[str, Any, Any]] | None = None,
    template: str = "jobs/form.html",
) -> bottle.HTTPResponse:
    placed = formrows.place(errors or {})
    shown = [*(k for k, v in values["rows"].items() if v), *placed]
    return req.render(
        template,
        status=status,
        job=job,
        v=values,
        r=values["rows"],
        filled=lambda prefix: any(k.startswith(prefix) for k in shown),  # open its <details>
        action_rows=formrows.action_rows(values["rows"]),
        choices=formrows.CHOICES,
        action_fields=formrows.ACTION_FIELDS,
        integration_names=[i.name for i in req.ctx.database.read(store.load_all)],
        errors=placed,
        anchor=formrows.anchor,
        conflict=conflict or [],
        durations=forms.DURATION_CONSTRAINTS,
        resource_keys=forms.RESOURCE_KEYS,
        zones=forms.COMMON_ZONES,
        modifiable=forms.MODIFIABLE,
        preview=_preview(values["schedule"], values["timezone"], req.now),
    )


def _row_edit(req: Req, job: JobSpec | None) -> bottle.HTTPResponse | None:
    """ "Add action", "Remove" or a changed action type: the form again, nothing saved.

    They are submit buttons, so they work without JavaScript (the whole form again);
    for htmx the answer is the actions fieldset alone, which it swaps in.
    """
    form = req.request.forms
    drop = form.get("_remove_action") or ""
    if not (form.get("_add_action") or drop.isdigit() or form.get("_refresh")):
        return None
    add = form.get("_new_action_type") if form.get("_add_action") else None
    values = forms.form_values(form, int(drop) if drop.isdigit() else None, add)
    template = "jobs/_actions.html" if req.htmx else "jobs/form.html"
    return _form_page(req, job, values, template=template)


def _preview(schedule: str, timezone: str, now: datetime) -> dict[str, Any]:
    """What the cron preview shows: a description and the next 5 times, or the error."""
    if not schedule.strip():
        return {"empty": True}
    try:
        s = Schedule(schedule.strip(), timezone.strip() or "UTC")
        return {"description": s.describe(), "next": s.next_n(now, 5), "zone": s.timezone}
    except CronError as exc:
        return {"error": f"{exc.field}: {exc.reason}"}


def install(root: bottle.Bottle, ctx: Context) -> None:
    @root.get("/jobs/new")
    @page(ctx, "admin")
    def new_form(req: Req) -> Any:
        return _form_page(req, None, forms.values_of(None))

    @root.post("/jobs")
    @page(ctx, "admin", write=True)
    def create(req: Req) -> Any:
        edited = _row_edit(req, None)
        if edited is not None:
            return edited
        body, errors = forms.to_body(req.request.forms)
        try:
            spec = parse_job(body)
        except ValidationError as exc:
            errors = {**exc.fields, **errors}
        if errors:
            return _form_page(req, None, forms.form_values(req.request.forms), errors, 422)
        try:
            stored = operations.save_job(ctx, spec, req.now, req.visitor.name)
        except ApiError as exc:  # a taken name (409), a kickOffJob cycle (400 -> 422)
            if exc.status not in (400, 409):
                raise
            status = 422 if exc.status == 400 else 409
            values = forms.form_values(req.request.forms)
            return _form_page(req, None, values, exc.fields or {"name": exc.message}, status)
        return _see(f"/jobs/{stored.id}/definition", f"Job {stored.name} created.")

    @root.get("/jobs/<job_id>/definition")
    @page(ctx)
    def definition(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id))
        last = ctx.database.read(reads.last_runs, [job.stored_id], req.now).get(job.stored_id)
        runs = ctx.database.read(reads.job_runs, job.id, req.now)
        nexts = (
            job.cron.next_n(req.now, 5) if job.cron and job.enabled and not job.archived_at else []
        )
        text = jobfiles.export_yaml([job])
        shown = job.public_dict()  # header values masked
        return req.render(
            "jobs/definition.html",
            job=job,
            last=last,
            runs=runs,
            next_runs=nexts,
            job_status=status_of(job, last),
            sentences=sentences(shown["constraints"]),
            actions=shown["actions"],
            yaml_text=text,
            env_shown=[(k, v) for k, v in sorted(job.env.items())],
        )

    @root.get("/jobs/<job_id>/definition.yaml")
    @page(ctx)
    def definition_yaml(req: Req, job_id: str) -> Any:
        """The job as `export` writes it, as a file (names are [a-z0-9-], safe to quote)."""
        job = operations.load_job(ctx, job_id_of(job_id))
        return bottle.HTTPResponse(
            body=jobfiles.export_yaml([job]),
            headers={
                "Content-Type": "text/yaml; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{job.name}.yaml"',
                "Cache-Control": "no-store",
            },
        )

    @root.get("/jobs/<job_id>/edit")
    @page(ctx, "admin")
    def edit_form(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        return _form_page(req, job, forms.values_of(job))

    @root.post("/jobs/<job_id>")
    @page(ctx, "admin", write=True)
    def update(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        edited = _row_edit(req, job)
        if edited is not None:
            return edited
        form = req.request.forms
        body, errors = forms.to_body(form, job)
        opened = form.get("updatedAt") or ""
        current = job.updated_at.isoformat() if job.updated_at else ""
        if opened != current:
            values = forms.form_values(form)
            values["updatedAt"] = current  # submitting again overwrites, knowingly
            return _form_page(
                req, job, values, {}, 409, forms.differences(job, body) or [("(none)", "", "")]
            )
        try:
            spec = parse_job(body, base=job)
        except ValidationError as exc:
            errors = {**exc.fields, **errors}
        if errors:
            return _form_page(req, job, forms.form_values(form), errors, 422)
        try:
            stored = operations.save_job(ctx, spec, req.now, req.visitor.name)
        except ApiError as exc:  # a taken name (409), a kickOffJob cycle (400 -> 422)
            if exc.status not in (400, 409):
                raise
            status = 422 if exc.status == 400 else 409
            values = forms.form_values(form)
            return _form_page(req, job, values, exc.fields or {"name": exc.message}, status)
        return _see(f"/jobs/{stored.id}/definition", f"Job {stored.name} saved.")

    @root.post("/schedule/_preview")
    @page(ctx, write=True)
    def preview(req: Req) -> Any:
        form = req.request.forms
        return req.render(
            "jobs/_cron_preview.html",
            preview=_preview(
                form.getunicode("schedule") or "", form.getunicode("timezone") or "UTC", req.now
            ),
        )

    @root.post("/jobs/<job_id>/pause")
    @page(ctx, "operator", write=True)
    def pause(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        reason = (req.request.forms.getunicode("reason") or "").strip()[:500]
        operations.pause_job(
            ctx,
            job,
            reason or f"paused in the web UI by {req.visitor.name}",
            req.now,
            req.visitor.name,
        )
        return _see(_back(req, job), f"Job {job.name} paused.")

    @root.post("/jobs/<job_id>/resume")
    @page(ctx, "operator", write=True)
    def resume(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        operations.resume_job(ctx, job, req.now, req.visitor.name)
        return _see(_back(req, job), f"Job {job.name} resumed.")

    @root.post("/jobs/<job_id>/archive")
    @page(ctx, "admin", write=True)
    def archive(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        if (req.request.forms.getunicode("confirm_name") or "").strip() != job.name:
            raise ApiError(400, f"Type the job's name ({job.name}) to archive it.")
        operations.archive_job(ctx, job.stored_id, req.now, req.visitor.name)
        return _see("/jobs", f"Job {job.name} archived; its runs are kept.")


def _back(req: Req, job: JobSpec) -> str:
    """Back where the button was pressed (the list or the job page)."""
    back = req.request.forms.get("back") or ""
    return (
        back
        if back.startswith("/jobs") and not back.startswith("//")
        else f"/jobs/{job.id}/definition"
    )
