"""Who changed a job, and how: the `job_audit` table.

Every path that changes a job definition builds an `Entry` (`entry_for`) from the
stored version and the new one and hands it to the writer of the change: the
syncer writes it in the same transaction as the job (API, web UI, pause/resume),
and `apply` without `--server` in its own transaction. So a change and its record
are committed together or not at all. The actor is an API token's name, `apply`,
or how the server was open (`loopback`, `no-auth`); `apply --server` records
`apply (<token name>)`. Unchanged saves record nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee as pw

from itinerary.auth import auth_required
from itinerary.ids import new_row_id
from itinerary.jobs import JobSpec
from itinerary.models import ApiToken, BaseModel, JSONField, UTCDateTimeField
from itinerary.tokens import hash_token

ACTIONS = ("created", "edited", "paused", "resumed", "archived")
UNTRACKED = {"id", "createdAt", "updatedAt", "archivedAt"}
VIA_HEADER = "X-Itinerary-Via"  # `apply --server` sends "apply"


class JobAudit(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    job_id = pw.BigIntegerField()
    at = UTCDateTimeField()
    actor = pw.CharField()
    action = pw.CharField()
    changes = JSONField(default=list)
    details = JSONField(default=dict)

    class Meta:
        table_name = "job_audit"


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str
    changes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def changed_fields(before: JobSpec, after: JobSpec) -> tuple[str, ...]:
    """The definition's fields (API names) that differ, in a stable order."""
    old, new = before.to_dict(), after.to_dict()
    return tuple(
        sorted(
            k for k in old.keys() | new.keys() if k not in UNTRACKED and old.get(k) != new.get(k)
        )
    )


def entry_for(before: JobSpec | None, after: JobSpec, actor: str) -> Entry | None:
    """What saving `after` over `before` does; None when nothing changes."""
    if before is None:
        return Entry(actor, "created")
    changes = changed_fields(before, after)
    if not changes:
        return None
    if changes == ("enabled",) or set(changes) <= {"enabled", "pausedReason"}:
        if before.enabled and not after.enabled:
            return Entry(actor, "paused", changes, {"reason": after.paused_reason})
        if after.enabled and not before.enabled:
            return Entry(actor, "resumed", changes)
    return Entry(actor, "edited", changes)


def write(writer: pw.Database, job_id: int, entry: Entry | None, at: datetime) -> None:
    """Insert the record (inside the caller's transaction)."""
    if entry is None:
        return
    JobAudit.insert(
        id=new_row_id(),
        job_id=job_id,
        at=at,
        actor=entry.actor[:200],
        action=entry.action,
        changes=list(entry.changes),
        details=entry.details,
    ).execute(writer)


def of_job(job_id: int, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    """A job's records, newest first (read connection)."""
    query = JobAudit.select().where(JobAudit.job_id == job_id)
    if before is not None:
        query = query.where(JobAudit.at < before)
    rows = query.order_by(JobAudit.at.desc(), JobAudit.id.desc()).limit(limit)
    return [
        {
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "changes": r.changes,
            "details": r.details,
        }
        for r in rows
    ]


def actor_of(ctx: Any, header: str | None, request: Any) -> str:
    """Who is making an API write: the bearer token's name, or how the API is open."""
    name = "no-auth" if ctx.config.insecure_no_auth else "loopback"
    scheme, _, token = (header or "").partition(" ")
    if auth_required(ctx.config) and scheme.lower() == "bearer" and token.strip():
        token_hash = hash_token(token.strip())
        row = ctx.database.read(
            lambda: ApiToken.select(ApiToken.name).where(ApiToken.token_hash == token_hash).first()
        )
        name = row.name if row else "unknown token"
    if (request.get_header(VIA_HEADER) or "").strip().lower() == "apply":
        return f"apply ({name})"
    return name
