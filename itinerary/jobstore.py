"""Job definitions to and from their rows (`job`, `job_tags`, `job_actions`).

Reads run on the caller's read-only connection through `Database.read`; the
syncer, the only writer, calls `save_job` and `archive_job` inside its
transaction with the writer connection.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import peewee as pw

from itinerary import jobcache
from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES, Action, JobSpec
from itinerary.models import Job, JobAction, JobTag

ACTION_NAMES = {v: k for k, v in ACTION_TYPES.items()}
CONSTRAINT_NAMES: dict[int | None, str] = {v: k for k, v in CONSTRAINT_TYPES.items()}


class Conflict(Exception):
    """A write clashed with stored state (a duplicate name, a stale update)."""


def to_spec(row: Job, tags: list[str], actions: list[JobAction]) -> JobSpec:
    constraints = {CONSTRAINT_NAMES[int(k)]: v for k, v in (row.constraints or {}).items()}
    return JobSpec(
        id=row.id,
        name=row.name,
        description=row.description or "",
        schedule=row.schedule,
        timezone=row.timezone,
        enabled=bool(row.enabled),
        paused_reason=row.paused_reason,
        namespace=row.namespace,
        images=tuple(row.images or ()),
        commands=tuple(tuple(c) for c in row.commands or ()),
        args=tuple(row.args or ()),
        service_accounts=tuple(row.service_accounts or ()),
        env=dict(row.env or {}),
        env_secret=row.env_secret,
        resources=row.resources,
        pod_spec=row.pod_spec,
        tags=tuple(sorted(tags)),
        constraints=constraints,
        actions=tuple(
            Action(
                type=ACTION_NAMES[a.action_type_id],
                trigger=a.trigger,
                config=a.config or {},
                constraint=CONSTRAINT_NAMES.get(a.constraint_type_id),
            )
            for a in sorted(actions, key=lambda a: a.position)
        ),
        manually_runnable=bool(row.manually_runnable),
        manual_run_modifiable_fields=tuple(row.manual_run_modifiable_fields or ()),
        created_at=row.created_at,
        updated_at=row.updated_at,
        archived_at=row.archived_at,
    )


def load_jobs(job_ids: list[int] | None = None, *, include_archived: bool = False) -> list[JobSpec]:
    """Jobs with their tags and actions, in three queries whatever their number."""
    query = Job.select().order_by(Job.id)
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    if not include_archived:
        query = query.where(Job.archived_at.is_null())
    rows = list(query)
    ids = [r.id for r in rows]
    tags: dict[int, list[str]] = {i: [] for i in ids}
    actions: dict[int, list[JobAction]] = {i: [] for i in ids}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        for tag in JobTag.select().where(JobTag.job_id.in_(chunk)):
            tags[tag.job_id].append(tag.tag)
        for action in JobAction.select().where(JobAction.job_id.in_(chunk)):
            actions[action.job_id].append(action)
    return [to_spec(r, tags[r.id], actions[r.id]) for r in rows]


def get_job(job_id: int, *, include_archived: bool = True) -> JobSpec | None:
    found = load_jobs([job_id], include_archived=include_archived)
    return found[0] if found else None


def get_job_by_name(name: str) -> JobSpec | None:
    row = Job.get_or_none(Job.active_name == name)
    return get_job(row.id) if row else None


def _row_values(spec: JobSpec, now: datetime) -> dict[str, Any]:
    return {
        "name": spec.name,
        "active_name": None if spec.archived_at else spec.name,
        "description": spec.description,
        "schedule": spec.schedule,
        "timezone": spec.timezone,
        "enabled": spec.enabled,
        "paused_reason": spec.paused_reason,
        "namespace": spec.namespace,
        "images": list(spec.images),
        "commands": [list(c) for c in spec.commands],
        "args": list(spec.args),
        "service_accounts": list(spec.service_accounts),
        "env": spec.env,
        "env_secret": spec.env_secret,
        "resources": spec.resources,
        "pod_spec": spec.pod_spec,
        "constraints": {str(CONSTRAINT_TYPES[k]): v for k, v in spec.constraints.items()},
        "manually_runnable": spec.manually_runnable,
        "manual_run_modifiable_fields": list(spec.manual_run_modifiable_fields),
        "updated_at": now,
    }


def save_job(writer: pw.Database, spec: JobSpec, now: datetime) -> JobSpec:
    """Insert or update `spec` (by id) with its tags and actions; call inside a transaction."""
    values = _row_values(spec, now)
    clash = Job.select(Job.id).where(Job.active_name == spec.name)
    if spec.id is not None:
        clash = clash.where(Job.id != spec.id)
    if clash.bind(writer).exists():
        raise Conflict(f"a job named {spec.name!r} exists already")
    if spec.id is None:
        job_id = Job.insert(created_at=now, **values).execute(writer)
    else:
        updated = Job.update(**values).where(Job.id == spec.id).execute(writer)
        # MySQL counts changed rows, not matched ones: an identical update within one second
        # (its TIMESTAMP precision) reports 0, so look before calling the job missing.
        if not updated and not Job.select().where(Job.id == spec.id).bind(writer).exists():
            raise Conflict(f"job {spec.id} does not exist")
        job_id = spec.id
        JobTag.delete().where(JobTag.job_id == job_id).execute(writer)
        JobAction.delete().where(JobAction.job_id == job_id).execute(writer)
    if spec.tags:
        JobTag.insert_many([{"job_id": job_id, "tag": t} for t in spec.tags]).execute(writer)
    if spec.actions:
        JobAction.insert_many(
            [
                {
                    "job_id": job_id,
                    "position": i,
                    "action_type_id": ACTION_TYPES[a.type],
                    "trigger": a.trigger,
                    "constraint_type_id": CONSTRAINT_TYPES.get(a.constraint or ""),
                    "config": a.config,
                }
                for i, a in enumerate(spec.actions)
            ]
        ).execute(writer)
    row = Job.select().where(Job.id == job_id).bind(writer).get()
    _changed(job_id)
    return replace(to_spec(row, list(spec.tags), []), actions=spec.actions)


def archive_job(writer: pw.Database, job_id: int, now: datetime) -> bool:
    """Archive (never delete: runs keep pointing at it); True if it was live."""
    count = (
        Job.update(archived_at=now, active_name=None, updated_at=now, enabled=False)
        .where((Job.id == job_id) & Job.archived_at.is_null())
        .execute(writer)
    )
    _changed(job_id)
    return bool(count)


def _changed(job_id: int) -> None:
    """Drop the job's cached JSON (`itinerary/jobcache.py`)."""
    jobcache.forget(job_id)
