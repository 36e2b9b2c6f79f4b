"""Integration routes (admin): list, read, create, update, delete, send a test message.

Secrets never leave: every body is `integrations.public()` (masked), and a PUT
that sends a masked value back keeps the stored secret. Writes go through the
syncer like job definitions (`SaveIntegration`, `DeleteIntegration`), then tell
the webhook handler (`IntegrationsChanged`) so it reloads the integration and
forgets a broken mark. A delete is refused (409) while live jobs' webhook
actions name the integration, with their names.
"""

from __future__ import annotations

from typing import Any

from itinerary import messages
from itinerary.api.routing import Call, PathParam, Reply, Route
from itinerary.errors import ApiError, invalid, not_found
from itinerary.operations import wait_reply
from itinerary.webhooks import probe, store
from itinerary.webhooks.integrations import (
    NAME_MAX,
    TYPES,
    Integration,
    IntegrationError,
    parse,
    public,
)

NAME = PathParam("name", {"type": "string", "maxLength": NAME_MAX}, "integration name")
NTIME = {"type": ["string", "null"], "format": "date-time"}
SCHEMAS: dict[str, Any] = {
    "IntegrationInput": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": NAME_MAX},
            "type": {"enum": list(TYPES)},
            "config": {
                "type": "object",
                "description": "slack {url}; pagerduty {routingKey, severity?}; newrelic "
                "{accountId, apiKey, region, eventType?}; custom {url, method?, headers?, "
                "template?, secret?}; any: endpoint?, rateLimit?",
            },
        },
        "required": ["name", "type", "config"],
        "additionalProperties": False,
    },
    "Integration": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": {"enum": list(TYPES)},
            "config": {"type": "object", "description": "secrets masked as •••• + last 4"},
            "broken": {"type": "boolean"},
            "brokenReason": {"type": ["string", "null"]},
            "brokenAt": NTIME,
            "createdAt": NTIME,
            "updatedAt": NTIME,
            "lastDelivery": {"type": ["object", "null"]},
        },
        "required": ["name", "type", "config", "broken"],
    },
    "IntegrationList": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Integration"}},
            "nextCursor": {"type": "null"},
        },
        "required": ["items", "nextCursor"],
    },
    "IntegrationTest": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "statusCode": {"type": ["integer", "null"]},
            "response": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "durationMs": {"type": ["number", "null"]},
        },
        "required": ["ok"],
    },
}


def _shown(call: Call, integration: Integration) -> dict[str, Any]:
    last = call.ctx.database.read(store.last_delivery, integration.name)
    return {**public(integration), "lastDelivery": last}


def _load(call: Call) -> Integration:
    name = call.path["name"]
    found = call.ctx.database.read(store.get, name) if len(name) <= NAME_MAX else None
    if found is None:
        raise not_found(f"integration {name!r}")
    return found


def _parse(body: Any, base: Integration | None = None) -> Integration:
    try:
        return parse(body, base)
    except IntegrationError as exc:
        raise invalid(exc.fields) from None


def _write(call: Call, msg: Any) -> Any:
    call.ctx.queues.syncer.put(msg)
    try:
        result = wait_reply(msg.reply, "the syncer")
    except store.Conflict as exc:
        raise ApiError(409, str(exc), fields={"name": str(exc)}) from None
    call.ctx.queues.webhooks.put(messages.IntegrationsChanged(msg_name(msg), call.now))
    return result


def msg_name(msg: Any) -> str:
    return msg.name if isinstance(msg, messages.DeleteIntegration) else msg.integration.name


def list_integrations(call: Call) -> Any:
    found = call.ctx.database.read(store.load_all)
    return {"items": [_shown(call, i) for i in found], "nextCursor": None}


def get_integration(call: Call) -> Any:
    return _shown(call, _load(call))


def create_integration(call: Call) -> Any:
    integration = _parse(call.body)
    stored = _write(call, messages.SaveIntegration(integration, True, call.now))
    return Reply(201, _shown(call, stored), headers={"Location": f"integrations/{stored.name}"})


def update_integration(call: Call) -> Any:
    current = _load(call)
    stored = _write(call, messages.SaveIntegration(_parse(call.body, current), False, call.now))
    return _shown(call, stored)


def delete_integration(call: Call) -> Any:
    name = _load(call).name
    if not _write(call, messages.DeleteIntegration(name, call.now)):
        raise not_found(f"integration {name!r}")
    return Reply(204)


def test_integration(call: Call) -> Any:
    integration = _load(call)
    q = call.ctx.queues
    answer = probe.send_test(integration, call.ctx.config, q.syncer, q.stats, call.ctx.clock)
    q.webhooks.put(messages.IntegrationsChanged(integration.name, call.now))
    return answer


ROUTES = (
    Route(
        "GET",
        "/integrations",
        list_integrations,
        "admin",
        "List integrations (secrets masked) with their last delivery",
        "integrations",
        response="IntegrationList",
    ),
    Route(
        "POST",
        "/integrations",
        create_integration,
        "admin",
        "Create a named integration (Slack, PagerDuty, New Relic or custom webhook)",
        "integrations",
        ok=201,
        response="Integration",
        body="IntegrationInput",
        errors=(409,),
    ),
    Route(
        "GET",
        "/integrations/{name}",
        get_integration,
        "admin",
        "One integration (secrets masked)",
        "integrations",
        response="Integration",
        path_params=(NAME,),
        errors=(404,),
    ),
    Route(
        "PUT",
        "/integrations/{name}",
        update_integration,
        "admin",
        "Change an integration (masked secrets sent back keep their values); clears broken",
        "integrations",
        response="Integration",
        path_params=(NAME,),
        body="IntegrationInput",
        errors=(404, 409),
    ),
    Route(
        "DELETE",
        "/integrations/{name}",
        delete_integration,
        "admin",
        "Delete an integration no live job uses (409 names the jobs that do)",
        "integrations",
        ok=204,
        path_params=(NAME,),
        errors=(404, 409),
    ),
    Route(
        "POST",
        "/integrations/{name}/test",
        test_integration,
        "admin",
        "Send a test message now and answer with the service's response",
        "integrations",
        response="IntegrationTest",
        path_params=(NAME,),
        errors=(404,),
    ),
)
