"""Bearer-token authentication and role checks for the JSON API.

Roles are ordered viewer < operator < admin: viewers read, operators also run
and cancel jobs and pause them, admins also define jobs. Tokens are created by
the `token` command (itinerary/tokens.py) and only their SHA-256 is stored.
Authentication is off when Itinerary listens on loopback only (the embedded
experience) or with `--insecure-no-auth`; `auth_mode` says which for the
start-up log line. A token's `last_used_at` (shown by `token list`, so stale
tokens can be found and revoked) is sent to the syncer at most once a minute per
token, never once per request.
"""

from __future__ import annotations

from datetime import timedelta

from gevent.queue import Full

from itinerary import tokens
from itinerary.config import Config
from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.messages import TokenUsed
from itinerary.models import ApiToken

RANK = {role: i for i, role in enumerate(tokens.ROLES)}
NOTE_USE_EVERY = timedelta(minutes=1)


def auth_required(config: Config) -> bool:
    if config.insecure_no_auth:
        return False
    return getattr(config, "require_auth", False) or not config.loopback


def auth_mode(config: Config) -> str:
    """One phrase for the start-up log: is the API open, and why."""
    if config.insecure_no_auth:
        return "authentication OFF (--insecure-no-auth)"
    if config.loopback and not getattr(config, "require_auth", False):
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
    token_hash = tokens.hash_token(token.strip())
    role = ctx.database.read(_role_of, token_hash)
    if role is None:
        raise ApiError(401, "the token is unknown or revoked")
    _note_use(ctx, token_hash)
    if RANK[role] < RANK[needed]:
        raise ApiError(403, f"this needs the {needed} role; the token has {role}")
    return role


def _note_use(ctx: Context, token_hash: str) -> None:
    """Send the token's use to the syncer, unless this process did so less than a minute ago."""
    now = ctx.clock.now()
    last = ctx.token_uses.get(token_hash)
    if last is not None and now - last < NOTE_USE_EVERY:
        return
    try:
        ctx.queues.syncer.put_nowait(TokenUsed(token_hash, now))
    except Full:
        return  # a syncer that busy has more important writes; a later request tells it
    ctx.token_uses[token_hash] = now
