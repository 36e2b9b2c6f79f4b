"""Bearer-token authentication and role checks for the JSON API.

Roles are ordered viewer < operator < admin: viewers read, operators also run
and cancel jobs and pause them, admins also define jobs. Tokens are created by
the `token` command (itinerary/tokens.py) and only their SHA-256 is stored.
Authentication is off when Itinerary listens on loopback only (the embedded
experience) or with `--insecure-no-auth`; `auth_mode` says which for the
start-up log line. `last_used_at` is not updated by requests: that would add a
write per request to the syncer's inbox for a figure nobody schedules by.
"""

from __future__ import annotations

from typing import Any

from itinerary import tokens
from itinerary.api.errors import ApiError
from itinerary.context import Context
from itinerary.db import ApiToken

RANK = {role: i for i, role in enumerate(tokens.ROLES)}


def auth_required(config: Any) -> bool:
    return not (config.insecure_no_auth or config.loopback)


def auth_mode(config: Any) -> str:
    """One phrase for the start-up log: is the API open, and why."""
    if config.insecure_no_auth:
        return "authentication OFF (--insecure-no-auth)"
    if config.loopback:
        return f"authentication off (listening on loopback {config.host} only)"
    return "authentication required (bearer API tokens)"


def _role_of(token_hash: str) -> str | None:
    row = ApiToken.get_or_none((ApiToken.token_hash == token_hash) & ApiToken.revoked_at.is_null())
    return row.role if row else None


def authorize(ctx: Context, header: str | None, needed: str) -> str:
    """The caller's role when it is at least `needed`; 401 or 403 otherwise."""
    if not auth_required(ctx.config):
        return "admin"
    if not header:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "use the Bearer scheme: 'Authorization: Bearer <token>'")
    role = ctx.database.read(_role_of, tokens.hash_token(token.strip()))
    if role is None:
        raise ApiError(401, "the token is unknown or revoked")
    if RANK[role] < RANK[needed]:
        raise ApiError(403, f"this needs the {needed} role; the token has {role}")
    return role
