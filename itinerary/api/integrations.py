"""Integration routes (admin): list, read, create, update, delete, send a test message.

Secrets never leave: every body is `integrations.public()` (masked), and a PUT
that sends a masked value back keeps the stored secret. Writes go through
`webhooks/admin.py`, shared with the Settings pages: the syncer stores them
(`SaveIntegration`, `DeleteIntegration`), then the webhook handler is told
(`IntegrationsChanged`) so it reloads the integration and forgets a broken mark.
A delete is refused (409) while live jobs' webhook actions name the
integration, with their names.
"""

from __future__ import annotations

from typing import Any

from itinerary.api.routing import Call, PathParam, Reply, Route
from itinerary.errors import invalid
from itinerary.webhooks import admin, store
from itinerary.webhooks.integrations import (
    NAME_MAX,
    TYPES,
    Integration,
    IntegrationError,
    parse,
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
    return admin.shown(call.ctx, integration)


def _load(call: Call) -> Integration:
    return admin.load(call.ctx, call.path["name"])


def _parse(body: Any, base: Integration | None = None) -> Integration:
    try:
        return parse(body, base)
    except IntegrationError as exc:
        raise invalid(exc.fields) from None


def list_integrations(call: Call) -> Any:
    found = call.ctx.database.read(store.load_all)
    return {"items": [_shown(call, i) for i in found], "nextCursor": None}


def get_integration(call: Call) -> Any:
    return _shown(call, _load(call))


def create_integration(call: Call) -> Any:
    stored = admin.save(call.ctx, _parse(call.body), True, call.now)
    return Reply(201, _shown(call, stored), headers={"Location": f"integrations/{stored.name}"})


def update_integration(call: Call) -> Any:
    current = _load(call)
    stored = admin.save(call.ctx, _parse(call.body, current), False, call.now)
    return _shown(call, stored)


def delete_integration(call: Call) -> Any:
    admin.delete(call.ctx, _load(call).name, call.now)
    return Reply(204)


def test_integration(call: Call) -> Any:
    return admin.send_test(call.ctx, _load(call), call.now)


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
