"""`token create|list|revoke`: API tokens from the command line (domain: `itinerary/tokens.py`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import peewee as pw

from itinerary.clock import RealClock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.models import bind
from itinerary.tokens import ROLES, TokenError, create, list_tokens, revoke


def add_cli(subparsers: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
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


def run_cli(args: argparse.Namespace, config: Config) -> int:
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
