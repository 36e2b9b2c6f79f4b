"""The route table's building blocks, and the request pipeline every route shares.

A `Route` declares its method, path, role, parameters, body and responses;
`itinerary.api.make_api` mounts each on Bottle through `dispatch` (auth, CSRF,
parameter and body parsing, errors as JSON) and `itinerary.api.openapi` documents
the same declarations, so the OpenAPI document cannot drift from the routes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import bottle
import peewee as pw
from playhouse.pool import MaxConnectionsExceeded

from itinerary import audit, auth
from itinerary.api.params import Param, parse_query
from itinerary.context import Context
from itinerary.errors import ApiError, invalid

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20
# What a cross-site HTML form can send without a CORS preflight: refused on writes.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Call:
    """What a handler gets: the context, typed path/query values, the parsed body, the time."""

    ctx: Context
    path: dict[str, str]
    query: dict[str, Any]
    body: Any
    now: datetime
    actor: str = ""  # who is asking, for writes (audit.actor_of)


@dataclass
class Reply:
    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PathParam:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI template, e.g. /jobs/{job_id}
    handler: Callable[[Call], Any]
    role: str | None  # None: public
    summary: str
    tag: str
    ok: int = 200
    response: str | None = None  # component schema of the success body (None: no body)
    path_params: tuple[PathParam, ...] = ()
    params: tuple[Param, ...] = ()
    body: str | None = None  # component schema of the JSON body
    body_required: bool = True
    errors: tuple[int, ...] = ()  # beyond those every route may answer
    content_type: str = "application/json"
    alt_content: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bottle_path(self) -> str:
        return self.path.replace("{", "<").replace("}", ">")

    def statuses(self) -> list[int]:
        """Every status this route can answer with."""
        found = {self.ok, 400, 500, 503, *self.errors}
        if self.role is not None:
            found |= {401, 403}
        if self.method in WRITE_METHODS:
            found.add(415)
        return sorted(found)


def _read_body(route: Route, request: bottle.BaseRequest) -> Any:
    length = request.content_length
    if length > MAX_BODY:
        raise invalid({"body": f"must be at most {MAX_BODY} bytes"})
    raw = request.body.read(MAX_BODY + 1) if length != 0 else b""
    if not raw.strip():
        if route.body_required:
            raise invalid({"body": "a JSON body is required"})
        return {}
    media = (request.content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "send the body as application/json")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid({"body": f"is not valid JSON ({exc})"}) from None


def _check_media(request: bottle.BaseRequest) -> None:
    """Refuse what a cross-site form could post, so no page can act for a logged-in browser."""
    media = (request.content_type or "").split(";")[0].strip().lower()
    if media in FORM_TYPES:
        raise ApiError(415, f"{media} bodies are refused; send application/json")


def dispatch(
    ctx: Context, route: Route, request: bottle.BaseRequest, path: dict[str, str]
) -> Reply:
    """Run one request through auth, validation and the handler; errors become replies."""
    try:
        if route.role is not None:
            auth.authorize(ctx, request.get_header("Authorization"), route.role)
        if route.method in WRITE_METHODS:
            _check_media(request)
        now = ctx.clock.now()
        query = parse_query(route.params, request.query.dict, now)
        body = _read_body(route, request) if route.body else None
        actor = ""
        if route.method in WRITE_METHODS:
            actor = audit.actor_of(ctx, request.get_header("Authorization"), request)
        out = route.handler(Call(ctx, path, query, body, now, actor))
        return out if isinstance(out, Reply) else Reply(route.ok, out)
    except ApiError as exc:
        return Reply(exc.status, exc.body())
    except (pw.OperationalError, pw.InterfaceError, MaxConnectionsExceeded) as exc:
        # MaxConnectionsExceeded: every pooled connection stayed busy for the pool's timeout.
        log.warning("database unavailable for %s %s: %s", route.method, route.path, exc)
        return Reply(503, ApiError(503, "the database is unavailable").body())
    except Exception:
        log.exception("%s %s failed", route.method, route.path)
        return Reply(500, ApiError(500, "internal error; see the server log").body())
