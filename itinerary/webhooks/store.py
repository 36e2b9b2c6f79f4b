"""The `integrations` table: reads for the API and the handler, writes for the syncer.

The server writes integrations through its syncer (`SaveIntegration`,
`DeleteIntegration`, `MarkIntegration` ride with job definitions), like every
other write it makes; the `integration` command, a short-lived process, writes
through its own `Database` as `token` does. Deleting an integration that live
jobs' webhook actions name is refused with those jobs' names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import peewee as pw

from itinerary import messages
from itinerary.jobs import ACTION_TYPES
from itinerary.models import Integration as Row
from itinerary.models import Job, JobAction, WebhookDelivery, tuples
from itinerary.webhooks.integrations import Integration


class Conflict(Exception):
    """A name clash, or a delete refused because jobs use the integration."""


def _from_row(row: Row) -> Integration:
    return Integration(
        id=row.id,
        name=row.name,
        type=row.type,
        config=row.config,
        broken_reason=row.broken_reason,
        broken_at=row.broken_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def get(name: str) -> Integration | None:
    row = Row.get_or_none(Row.name == name)
    return None if row is None else _from_row(row)


def load_all() -> list[Integration]:
    return [_from_row(r) for r in Row.select().order_by(Row.name)]


def last_delivery_query(name: str) -> pw.ModelSelect[WebhookDelivery]:
    """The latest delivery attempt to an integration (idx_webhook_deliveries_integration)."""
    return (
        WebhookDelivery.select()
        .where(WebhookDelivery.integration == name)
        .order_by(WebhookDelivery.created_at.desc())
        .limit(1)
    )


def last_delivery(name: str) -> dict[str, Any] | None:
    row = last_delivery_query(name).first()
    if row is None:
        return None
    return {
        "at": row.created_at.isoformat().replace("+00:00", "Z"),
        "outcome": row.outcome,
        "statusCode": row.status_code,
        "error": row.error,
    }


def used_by(name: str) -> list[str]:
    """Names of live jobs whose webhook actions name the integration."""
    query = (
        JobAction.select(JobAction.config, Job.name)
        .join(Job, on=(Job.id == JobAction.job_id))
        .where((JobAction.action_type_id == ACTION_TYPES["webhook"]) & Job.archived_at.is_null())
    )
    found = {n for config, n in tuples(query) if (config or {}).get("integration") == name}
    return sorted(found)


# --- writes (inside the syncer's transaction, or the CLI's) -----------------------------------


def save(writer: pw.Database, integration: Integration, now: datetime, create: bool) -> Integration:
    """Insert (create) or update an integration; an edit clears its broken state."""
    exists = Row.select(Row.id).where(Row.name == integration.name).bind(writer).first()
    if create and exists is not None:
        raise Conflict(f"an integration named {integration.name!r} exists already")
    if not create and exists is None:
        raise Conflict(f"no integration named {integration.name!r}")
    values = {
        "type": integration.type,
        "config": integration.config,
        "broken_reason": None,
        "broken_at": None,
        "updated_at": now,
    }
    if create:
        Row.insert(name=integration.name, created_at=now, **values).execute(writer)
    else:
        Row.update(**values).where(Row.name == integration.name).execute(writer)
    return _from_row(Row.select().where(Row.name == integration.name).bind(writer).get())


def delete(writer: pw.Database, name: str) -> bool:
    users = _used_by_with(writer, name)
    if users:
        raise Conflict(f"integration {name!r} is used by the jobs {', '.join(users)}")
    return bool(Row.delete().where(Row.name == name).execute(writer))


def _used_by_with(writer: pw.Database, name: str) -> list[str]:
    query = (
        JobAction.select(JobAction.config, Job.name)
        .join(Job, on=(Job.id == JobAction.job_id))
        .where((JobAction.action_type_id == ACTION_TYPES["webhook"]) & Job.archived_at.is_null())
        .bind(writer)
    )
    return sorted({n for config, n in tuples(query) if (config or {}).get("integration") == name})


def mark(writer: pw.Database, name: str, reason: str | None, at: datetime) -> bool:
    """Set (reason) or clear (None) an integration's broken state."""
    query = Row.update(broken_reason=reason, broken_at=at if reason else None)
    return bool(query.where(Row.name == name).execute(writer))


def write(writer: pw.Database, msg: Any) -> Any:
    """The syncer's entry point for integration messages."""
    if isinstance(msg, messages.SaveIntegration):
        return save(writer, msg.integration, msg.at, msg.create)
    if isinstance(msg, messages.DeleteIntegration):
        return delete(writer, msg.name)
    return mark(writer, msg.name, msg.reason, msg.at)
