"""The JSON API under /api/v1: `make_api(ctx)` builds the Bottle app from the route table.

Routes live in `jobs.py`, `runs.py` and `misc.py`; `routing.dispatch` gives them
all the same auth, validation and error handling; `openapi.py` documents the
same table. The API reads through `ctx.database`, and sends writes and commands
to the syncer and scheduler inboxes (`ctx.queues.syncer`, `ctx.queues.scheduler`).
"""

from __future__ import annotations

import json
from typing import Any

import bottle

from itinerary.api import history, integrations, jobfeed, jobs, misc, openapi, runs
from itinerary.api.routing import Call, Reply, Route, dispatch
from itinerary.auth import auth_mode
from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.jsontext import RawJSON

__all__ = ["ROUTES", "auth_mode", "make_api"]


def _openapi(call: Call) -> Any:
    return DOCUMENT


ROUTES: tuple[Route, ...] = (
    *jobs.ROUTES,
    *runs.ROUTES,
    *misc.ROUTES,
    *history.ROUTES,
    *jobfeed.ROUTES,
    *integrations.ROUTES,
    Route(
        "GET", "/openapi.json", _openapi, None, "This OpenAPI document", "meta", response="OpenAPI"
    ),
)
openapi.SCHEMAS.update(integrations.SCHEMAS)
DOCUMENT = openapi.build(ROUTES)


def _send(reply: Reply) -> bytes | str:
    bottle.response.status = reply.status
    for name, value in reply.headers.items():
        bottle.response.set_header(name, value)
    if reply.body is None:
        return b""
    if reply.content_type == "application/json":
        bottle.response.content_type = "application/json"
        if isinstance(reply.body, RawJSON):
            return str(reply.body)
        return json.dumps(reply.body, separators=(",", ":"))
    bottle.response.content_type = f"{reply.content_type}; charset=utf-8"
    return reply.body


def _callback(ctx: Context, route: Route) -> Any:
    def handle(**path: str) -> bytes | str:
        return _send(dispatch(ctx, route, bottle.request, path))

    return handle


def _error(err: bottle.HTTPError) -> str:
    """Bottle's own errors (no such route, wrong method) in the API's error shape."""
    status = err.status_code if err.status_code in (404, 405) else 500
    message = {404: "no such API route", 405: "method not allowed on this route"}.get(
        status, "internal error"
    )
    bottle.response.content_type = "application/json"
    return json.dumps(ApiError(status, message).body())


def make_api(ctx: Context) -> bottle.Bottle:
    """The API app, to be mounted at /api/v1."""
    app = bottle.Bottle()
    for route in ROUTES:
        app.route(route.bottle_path, route.method, _callback(ctx, route))
    for status in (404, 405, 500):
        app.error_handler[status] = _error
    return app
