"""API tokens: create, list and revoke (the `token` command: `itinerary/cli/tokens.py`).

The `token` command is a separate short-lived process, so it writes the
`api_tokens` table itself through its own `Database` (the one exception to
"only the syncer writes"; the server is not involved). The server records when
a token was last used, through its syncer (`touch`). A token is shown once at
creation; only its SHA-256 is stored. A fast hash is enough because tokens are
256 random bits, not passwords a dictionary could guess.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import peewee as pw

from itinerary.db import Database
from itinerary.models import ApiToken

ROLES = ("viewer", "operator", "admin")
PREFIX = "itn_"


class TokenError(ValueError):
    """A token command cannot be done; the message says why."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(database: Database, name: str, role: str, now: datetime) -> str:
    """Store a new token and return it (the only time it is visible)."""
    if role not in ROLES:
        raise TokenError(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 100:
        raise TokenError("--name: give a name of 1 to 100 characters")
    token = PREFIX + secrets.token_urlsafe(32)

    def insert() -> None:
        with database.writer.atomic():
            exists = ApiToken.select().where(ApiToken.name == name).bind(database.writer).exists()
            if exists:
                raise TokenError(f"--name: a token named {name!r} exists already")
            ApiToken.insert(
                name=name, role=role, token_hash=hash_token(token), created_at=now
            ).execute(database.writer)

    database.write(insert)
    return token


def list_tokens(database: Database) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        rows = ApiToken.select().order_by(ApiToken.name)
        return [
            {
                "name": r.name,
                "role": r.role,
                "createdAt": r.created_at,
                "revokedAt": r.revoked_at,
                "lastUsedAt": r.last_used_at,
            }
            for r in rows
        ]

    return database.read(read)


def revoke(database: Database, name: str, now: datetime) -> None:
    def update() -> int:
        return (
            ApiToken.update(revoked_at=now)
            .where((ApiToken.name == name) & ApiToken.revoked_at.is_null())
            .execute(database.writer)
        )

    if not database.write(update):
        raise TokenError(f"--name: no active token named {name!r}")


def touch(writer: pw.Database, token_hash: str, at: datetime) -> bool:
    """Record a use of the token at `at`, never moving `last_used_at` back (the syncer's call)."""
    earlier = ApiToken.last_used_at.is_null() | (ApiToken.last_used_at < at)
    query = ApiToken.update(last_used_at=at).where((ApiToken.token_hash == token_hash) & earlier)
    return bool(query.execute(writer))
