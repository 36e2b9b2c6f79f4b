"""Who is looking at a page: sign-in with an API token, sessions, CSRF, login rate limit.

The UI follows the API's modes (itinerary/auth.py): on loopback, or with
`--insecure-no-auth`, it is open and everyone is admin; otherwise a browser
signs in with an API token. The session cookie holds a random id; the table
`ui_sessions` stores only its SHA-256, the token's hash and a CSRF token. Every
request reads the session joined with its token, so a revoked token ends its
sessions at once, and an expired session is refused. Session cookies never
authenticate /api/v1, which reads only the Authorization header.

Every UI write needs the CSRF token (a form field or the `X-CSRF-Token` header
htmx sends), also in open mode, since any web page can make a browser post to
127.0.0.1; in open mode the token is a random cookie the page repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from itinerary import tokens
from itinerary.auth import RANK, auth_required
from itinerary.context import Context
from itinerary.models import ApiToken, BaseModel, UTCDateTimeField

COOKIE = "itinerary_session"
CSRF_COOKIE = "itinerary_csrf"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FAILURES = 5  # failed sign-ins per client address ...
LOGIN_WINDOW_S = 60.0  # ... within this many seconds, then wait


class UiSession(BaseModel):
    id_hash = pw.CharField(primary_key=True)
    token_hash = pw.CharField()
    csrf_token = pw.CharField()
    created_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "ui_sessions"


class Refused(Exception):
    """A request the UI will not serve: 401 (sign in), 403 (role, CSRF), 429 (rate limit)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Visitor:
    role: str
    name: str  # the token's name, or how the UI is open
    mode: str  # "loopback", "insecure" or "session"
    csrf: str
    new_csrf: bool = False  # open mode: the CSRF cookie must be set on this response

    def can(self, needed: str) -> bool:
        return RANK[self.role] >= RANK[needed]

    @property
    def perms(self) -> dict[str, bool]:
        """What the templates may offer; the routes check the same roles again."""
        operator, admin = self.can("operator"), self.can("admin")
        return {
            "run": operator,
            "cancel": operator,
            "pause": operator,
            "edit": admin,
            "archive": admin,
        }


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _session(id_hash: str, now: datetime) -> tuple[str, str, str] | None:
    row = (
        UiSession.select(ApiToken.role, ApiToken.name, UiSession.csrf_token)
        .join(ApiToken, on=(ApiToken.token_hash == UiSession.token_hash))
        .where(
            (UiSession.id_hash == id_hash)
            & (UiSession.expires_at > now)
            & ApiToken.revoked_at.is_null()
        )
        .tuples()
        .first()
    )
    return tuple(row) if row else None


def identify(ctx: Context, cookies: Any, now: datetime) -> Visitor | None:
    """The visitor behind a request's cookies; None when a sign-in is needed."""
    config = ctx.config
    if not auth_required(config):
        mode = "insecure" if config.insecure_no_auth else "loopback"
        csrf = cookies.get(CSRF_COOKIE) or ""
        if len(csrf) == 43 and csrf.replace("-", "").replace("_", "").isalnum():
            return Visitor("admin", mode, mode, csrf)
        return Visitor("admin", mode, mode, secrets.token_urlsafe(32), new_csrf=True)
    sid = cookies.get(COOKIE)
    if not sid or len(sid) > 100:
        return None
    found = ctx.database.read(_session, _hash(sid), now)
    if found is None:
        return None
    role, name, csrf = found
    return Visitor(role, name, "session", csrf)


def _token_role(token_hash: str) -> str | None:
    row = ApiToken.get_or_none((ApiToken.token_hash == token_hash) & ApiToken.revoked_at.is_null())
    return row.role if row else None


def sign_in(ctx: Context, token: str, now: datetime) -> str | None:
    """A new session's cookie value for a valid token, or None (unknown or revoked)."""
    token_hash = tokens.hash_token(token.strip())
    if ctx.database.read(_token_role, token_hash) is None:
        return None
    sid = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=ctx.config.ui_session_ttl)
    writer = ctx.database.writer

    def insert() -> None:
        with writer.atomic():
            UiSession.delete().where(UiSession.expires_at <= now).execute(writer)
            UiSession.insert(
                id_hash=_hash(sid),
                token_hash=token_hash,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=expires,
            ).execute(writer)

    ctx.database.write(insert)
    return sid


def sign_out(ctx: Context, sid: str | None) -> None:
    if not sid:
        return
    writer = ctx.database.writer

    def delete() -> None:
        UiSession.delete().where(UiSession.id_hash == _hash(sid)).execute(writer)

    ctx.database.write(delete)


def check_csrf(visitor: Visitor, sent: str | None) -> None:
    """403 unless the request repeats the visitor's CSRF token."""
    if visitor.new_csrf or not sent or not hmac.compare_digest(sent, visitor.csrf):
        raise Refused(403, "The form's security token is missing or stale: reload the page.")


class LoginLimiter:
    """At most LOGIN_FAILURES failed sign-ins per client address per LOGIN_WINDOW_S."""

    def __init__(self) -> None:
        self.failures: dict[str, deque[float]] = {}

    def wait_s(self, client: str, now: float) -> float:
        """How long this client must wait before trying again (0: it may try now)."""
        seen = self.failures.get(client)
        while seen and seen[0] <= now - LOGIN_WINDOW_S:
            seen.popleft()
        if not seen:
            self.failures.pop(client, None)
            return 0.0
        return seen[0] + LOGIN_WINDOW_S - now if len(seen) >= LOGIN_FAILURES else 0.0

    def failed(self, client: str, now: float) -> None:
        if len(self.failures) > 10000:  # a flood of addresses: forget the oldest
            self.failures.pop(next(iter(self.failures)))
        self.failures.setdefault(client, deque()).append(now)
