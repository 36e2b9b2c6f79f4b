"""Integration reads and writes shared by the API and the Settings pages.

Both surfaces validate with `integrations.parse`, write through the syncer
(`SaveIntegration`, `DeleteIntegration`) and then tell the webhook handler
(`IntegrationsChanged`) so it reloads the integration and forgets a broken
mark; a test message is sent by the caller's greenlet (probe.py). Keeping this
here means the page can never accept what the API refuses, or the reverse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from itinerary import messages
from itinerary.context import Context, wait_reply
from itinerary.errors import ApiError, not_found
from itinerary.webhooks import probe, store
from itinerary.webhooks.integrations import NAME_MAX, Integration, public


def shown(ctx: Context, integration: Integration) -> dict[str, Any]:
    """The public (masked) view plus the last delivery attempt."""
    last = ctx.database.read(store.last_delivery, integration.name)
    return {**public(integration), "lastDelivery": last}


def load(ctx: Context, name: str) -> Integration:
    found = ctx.database.read(store.get, name) if len(name) <= NAME_MAX else None
    if found is None:
        raise not_found(f"integration {name!r}")
    return found


def _write(ctx: Context, msg: Any, name: str, now: datetime) -> Any:
    ctx.queues.syncer.put(msg)
    try:
        result = wait_reply(msg.reply, "the syncer")
    except store.Conflict as exc:
        raise ApiError(409, str(exc), fields={"name": str(exc)}) from None
    ctx.queues.webhooks.put(messages.IntegrationsChanged(name, now))
    return result


def save(ctx: Context, integration: Integration, create: bool, now: datetime) -> Integration:
    """Create or update (409 on a taken or vanished name); an edit clears the broken mark."""
    msg = messages.SaveIntegration(integration, create, now)
    return _write(ctx, msg, integration.name, now)


def delete(ctx: Context, name: str, now: datetime) -> None:
    """Delete, or 409 naming the live jobs whose webhook actions use it."""
    if not _write(ctx, messages.DeleteIntegration(name, now), name, now):
        raise not_found(f"integration {name!r}")


def send_test(ctx: Context, integration: Integration, now: datetime) -> dict[str, Any]:
    """One test message; the service's answer (ok, statusCode, response, error, durationMs)."""
    q = ctx.queues
    answer = probe.send_test(integration, ctx.config, q.syncer, q.stats, ctx.clock)
    q.webhooks.put(messages.IntegrationsChanged(integration.name, now))
    return answer
