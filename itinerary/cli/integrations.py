"""`integration create|list|test|delete` (the domain half: `itinerary/webhooks/manage.py`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import peewee as pw
from gevent.queue import Empty, Queue

from itinerary.clock import RealClock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.messages import MarkIntegration, WebhookDeliveryRecord
from itinerary.models import WebhookDelivery, bind
from itinerary.webhooks import probe, store
from itinerary.webhooks.integrations import TYPES, IntegrationError, expand_env, parse, public
from itinerary.webhooks.manage import Change, ManageError, apply_changes


def add_cli(subparsers: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "integration", parents=[parent], help="manage notification integrations"
    )
    commands = parser.add_subparsers(dest="integration_command", required=True)
    make = commands.add_parser("create", parents=[parent], help="create an integration")
    make.add_argument("--name", required=True)
    make.add_argument("--type", required=True, choices=TYPES)
    make.add_argument(
        "--json",
        required=True,
        dest="body",
        help='its config as JSON; secrets as ${ENV_VAR}, e.g. \'{"url": "${SLACK_URL}"}\'',
    )
    commands.add_parser("list", parents=[parent], help="list integrations (secrets masked)")
    test = commands.add_parser(
        "test", parents=[parent], help="send a test message, show the answer"
    )
    test.add_argument("--name", required=True)
    drop = commands.add_parser("delete", parents=[parent], help="delete an unused integration")
    drop.add_argument("--name", required=True)
    for sub in commands.choices.values():
        sub.set_defaults(handler=run_cli)


def _create(database: Database, args: argparse.Namespace) -> str:
    try:
        config = json.loads(args.body)
    except ValueError as exc:
        raise ManageError(f"--json: not valid JSON ({exc})") from None
    try:
        integration = parse({"name": args.name, "type": args.type, "config": expand_env(config)})
    except IntegrationError as exc:
        raise ManageError("; ".join(f"{k}: {v}" for k, v in exc.fields.items())) from None
    apply_changes(database, [Change(integration.name, "created", integration)])
    return f"created integration {integration.name} ({integration.type})"


def _list(database: Database) -> str:
    lines = []
    for i in database.read(store.load_all):
        shown = public(i)
        state = f"BROKEN: {i.broken_reason}" if i.broken_reason else "ok"
        lines.append(
            f"{i.name}\t{i.type}\t{state}\t{json.dumps(shown['config'], ensure_ascii=False)}"
        )
    return "\n".join(lines) or "no integrations"


def _test(database: Database, name: str, config: Config) -> tuple[bool, str]:
    integration = database.read(store.get, name)
    if integration is None:
        raise ManageError(f"--name: no integration named {name!r}")
    records: Queue = Queue()
    answer = probe.send_test(integration, config, records, Queue(), RealClock())
    _write_records(database, records)
    if answer["ok"]:
        return True, f"ok: {answer.get('statusCode')} {answer.get('response') or ''}".rstrip()
    return False, f"failed: {answer.get('error')}"


def _write_records(database: Database, records: Queue) -> None:
    """The test's delivery record and broken mark, written as the syncer would."""
    pending = []
    while True:
        try:
            pending.append(records.get_nowait())
        except Empty:
            break

    def write() -> None:
        with database.writer.atomic():
            for msg in pending:
                if isinstance(msg, MarkIntegration):
                    store.mark(database.writer, msg.name, msg.reason, msg.at)
                elif isinstance(msg, WebhookDeliveryRecord):
                    row = {k: v for k, v in vars(msg).items() if k != "request_duration_ms"}
                    row["request_duration"] = msg.request_duration_ms
                    WebhookDelivery.insert(**row).execute(database.writer)

    database.write(write)


def _delete(database: Database, name: str) -> str:
    def delete() -> bool:
        with database.writer.atomic():
            return store.delete(database.writer, name)

    try:
        if not database.write(delete):
            raise ManageError(f"--name: no integration named {name!r}")
    except store.Conflict as exc:
        raise ManageError(str(exc)) from None
    return f"deleted integration {name}"


def run_cli(args: argparse.Namespace, config: Config) -> int:
    database = Database(config.dsn, pool_size=1)
    bind(database)
    try:
        command = args.integration_command
        ok = True
        if command == "create":
            text = _create(database, args)
        elif command == "list":
            text = _list(database)
        elif command == "test":
            ok, text = _test(database, args.name, config)
        else:
            text = _delete(database, args.name)
        print(text)  # noqa: T201 - the command's output
        return 0 if ok else 1
    except (ManageError, pw.DatabaseError) as exc:
        print(f"itinerary integration: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        database.close()
