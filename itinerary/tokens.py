"""API tokens: create, list and revoke, from the command line.

The `token` command is a separate short-lived process, so it writes the
`api_tokens` table itself through its own `Database` (the one exception to
"only the syncer writes"; the server is not involved). The server records when
a token was last used, through its syncer (`touch`). A token is shown once at
creation; only its SHA-256 is stored. A fast hash is enough because tokens are
256 random bits, not passwords a dictionary could guess.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
from datetime import datetime
from typing import Any

import peewee as pw

from itinerary.clock import RealClock
from itinerary.db import ApiToken, Database, bind

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


# --- command line ----------------------------------------------------------------------------


def add_cli(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    """Register `token create|list|revoke`; `parent` carries the settings flags (--db-dsn …)."""
    parser = subparsers.add_parser("token", parents=[parent], help="manage API tokens")
    commands = parser.add_subparsers(dest="token_command", required=True)
    make = commands.add_parser("create", parents=[parent], help="create a token, print it once")
    make.add_argument("--role", required=True, choices=ROLES)
    make.add_argument("--name", required=True)
    make.set_defaults(handler=run_cli)
    show = commands.add_parser("list", parents=[parent], help="list tokens (never their values)")
    show.set_defaults(handler=run_cli)
    drop = commands.add_parser("revoke", parents=[parent], help="revoke a token by name")
    drop.add_argument("--name", required=True)
    drop.set_defaults(handler=run_cli)


def run_cli(args: argparse.Namespace, config: Any) -> int:
    """Run a `token` subcommand against the configured database; the exit code."""
    database = Database(config.dsn, pool_size=1)
    bind(database)
    now = RealClock().now()
    try:
        if args.token_command == "create":
            print(create(database, args.name, args.role, now))  # noqa: T201 - the CLI's output
        elif args.token_command == "list":
            for t in list_tokens(database):
                state = f"revoked {t['revokedAt']:%Y-%m-%d}" if t["revokedAt"] else "active"
                used = t["lastUsedAt"]
                last = f"last used {used:%Y-%m-%d %H:%M}Z" if used else "never used"
                created = f"{t['createdAt']:%Y-%m-%d %H:%M}Z"
                print(f"{t['name']}\t{t['role']}\t{created}\t{state}\t{last}")  # noqa: T201
        else:
            revoke(database, args.name, now)
        return 0
    except (TokenError, pw.DatabaseError) as exc:
        print(f"itinerary token: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        database.close()
