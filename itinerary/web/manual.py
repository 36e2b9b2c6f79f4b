"""P8, a manual run: only for manually runnable jobs, only the fields the job lets a run
change (args, env, resources), now or at a time in the browser's zone; then the run's page.

The overrides go through `operations.run_now`, the API's own path, which checks them
against the job again; a value the job's validator refuses is shown beside its field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import bottle

from itinerary import operations
from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.jobs import CONSTRAINT_TYPES, JobSpec
from itinerary.web import forms
from itinerary.web.jobs import job_id_of
from itinerary.web.pipeline import Req, page, see_other


def install(root: bottle.Bottle, ctx: Context) -> None:
    @root.get("/jobs/<job_id>/run")
    @page(ctx, "operator")
    def run_form(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        return _run_page(req, job, _run_values(job), {})

    @root.post("/jobs/<job_id>/run")
    @page(ctx, "operator", write=True)
    def run(req: Req, job_id: str) -> Any:
        job = operations.load_job(ctx, job_id_of(job_id), live=True)
        if not job.manually_runnable:
            raise ApiError(403, f"Job {job.name} is not manually runnable.")
        form = req.request.forms
        overrides, start_at, errors = _run_input(form, job, req.now)
        if errors:
            return _run_page(req, job, _run_values_from(form, job), errors, 422)
        try:
            run_id = operations.run_now(ctx, job, overrides, start_at, req.now)
        except ApiError as exc:
            if exc.status != 400:
                raise
            return _run_page(req, job, _run_values_from(form, job), exc.fields, 422)
        when = "now" if start_at is None else f"at {start_at:%Y-%m-%d %H:%M} UTC"
        return see_other(f"/runs/{run_id}", f"Run {run_id} of {job.name} starts {when}.")


def _run_values(job: JobSpec) -> dict[str, Any]:
    res = job.resources or {}
    return {
        "args": "\n".join(job.args),
        "env": "\n".join(f"{k}={v}" for k, v in job.env.items()),
        "resources": {
            f"{a}.{b}": str((res.get(a) or {}).get(b, "")) for a, b in forms.RESOURCE_KEYS
        },
        "when": "now",
        "at": "",
    }


def _run_values_from(form: Any, job: JobSpec) -> dict[str, Any]:
    get = lambda n: form.getunicode(n) or ""  # noqa: E731
    return {
        "args": get("args"),
        "env": get("env"),
        "resources": {f"{a}.{b}": get(f"resources.{a}.{b}") for a, b in forms.RESOURCE_KEYS},
        "when": "at" if form.get("when") == "at" else "now",
        "at": get("at"),
    }


def _run_input(
    form: Any, job: JobSpec, now: datetime
) -> tuple[dict[str, Any], datetime | None, dict[str, str]]:
    """Overrides that differ from the job's own values, the start time, and errors."""
    body, errors = forms.to_body(form)
    overrides: dict[str, Any] = {}
    allowed = set(job.manual_run_modifiable_fields)
    if "args" in allowed and tuple(body["args"]) != job.args:
        overrides["args"] = body["args"]
    if "env" in allowed and body["env"] != job.env:
        overrides["env"] = body["env"]
    if "resources" in allowed and body["resources"] != job.resources:
        overrides["resources"] = body["resources"] or {}
    start_at = None
    if form.get("when") == "at":
        raw = (form.get("at") or "").strip()
        offset = form.get("tz_offset_min") or "0"
        try:
            local = datetime.fromisoformat(raw)
            minutes = int(offset) if re.fullmatch(r"-?[0-9]{1,4}", offset) else 0
            start_at = (local + timedelta(minutes=minutes)).replace(tzinfo=UTC)
            if start_at <= now:
                errors["at"] = "must be in the future"
            elif start_at > now + timedelta(days=366):
                errors["at"] = "must be within a year"
        except ValueError:
            errors["at"] = "give a date and time, e.g. 2026-12-24T18:00"
    return (
        overrides,
        start_at,
        {k: v for k, v in errors.items() if k in ("args", "env", "resources", "at")},
    )


def _run_page(
    req: Req, job: JobSpec, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> bottle.HTTPResponse:
    return req.render(
        "jobs/run.html",
        status=status,
        job=job,
        v=values,
        errors=errors,
        resource_keys=forms.RESOURCE_KEYS,
        constraint_names=CONSTRAINT_TYPES,
    )
