"""Integrations from the command line: `integration create|list|test|delete`, and `apply -f`.

Like `token`, the `integration` command is a short-lived process writing the
database itself; a running server's webhook handler re-reads an integration at
most 30 s later (API edits reach it at once). Secrets are given as `${ENV_VAR}`
references, expanded from this process's environment, so they appear neither in
the shell history nor in the YAML kept in git; nothing printed ever shows one.

`apply -f` takes `integrations: [...]` next to `jobs: [...]` in the same file,
and applies them first (jobs name them).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import peewee as pw
import yaml
from gevent.queue import Empty, Queue

from itinerary.clock import RealClock
from itinerary.db import Database, WebhookDelivery, bind
from itinerary.messages import MarkIntegration, WebhookDeliveryRecord
from itinerary.webhooks import probe, store
from itinerary.webhooks.integrations import (
    TYPES,
    Integration,
    IntegrationError,
    expand_env,
    parse,
    public,
)


class ManageError(ValueError):
    """An integration command or file cannot be done; the message says why."""


@dataclass(frozen=True)
class Change:
    name: str
    action: str  # created | updated | unchanged
    integration: Integration


# --- apply -f ---------------------------------------------------------------------------------


def read_integrations(
    text: str, source: str, env: dict[str, str] | None = None
) -> list[Integration]:
    """Every `integrations:` entry of the file's documents, validated, `${ENV}` expanded."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return []  # read_documents reports the YAML error
    found: list[Integration] = []
    errors: list[str] = []
    names: set[str] = set()
    for doc in docs:
        if not isinstance(doc, dict) or "integrations" not in doc:
            continue
        items = doc["integrations"] or []
        if not isinstance(items, list):
            raise ManageError(f"{source}: integrations must be a list")
        for i, body in enumerate(items):
            label = (
                f"integrations[{i}] ({body.get('name', '?') if isinstance(body, dict) else '?'})"
            )
            try:
                if isinstance(body, dict) and "config" in body:
                    body = {**body, "config": expand_env(body["config"], env)}
                integration = parse(body)
            except IntegrationError as exc:
                errors.extend(f"{label}: {k}: {v}" for k, v in exc.fields.items())
                continue
            if integration.name in names:
                errors.append(f"{label}: name: {integration.name!r} appears twice in the file")
            names.add(integration.name)
            found.append(integration)
    if errors:
        raise ManageError(f"{source}: " + "; ".join(errors))
    return found


def plan(wanted: list[Integration], live: dict[str, dict[str, Any]]) -> list[Change]:
    """Compare with the live integrations' public (masked) views: secrets compare by last 4."""
    out = []
    for integration in wanted:
        current = live.get(integration.name)
        if current is None:
            out.append(Change(integration.name, "created", integration))
        elif (current["type"], current["config"]) == (
            integration.type,
            public(integration)["config"],
        ):
            out.append(Change(integration.name, "unchanged", integration))
        else:
            out.append(Change(integration.name, "updated", integration))
    return out


def live(target: Any) -> dict[str, dict[str, Any]]:
    """The live integrations' public views, from the database or a server's API."""
    if isinstance(target, Database):
        return {i.name: public(i) for i in target.read(store.load_all)}
    return {i["name"]: i for i in target.call("GET", "/integrations")["items"]}


def apply_changes(target: Any, changes: list[Change]) -> None:
    """Write through a server's API, or the database directly (one transaction)."""
    if not isinstance(target, Database):
        for c in changes:
            body = {"name": c.name, "type": c.integration.type, "config": c.integration.config}
            if c.action == "created":
                target.call("POST", "/integrations", json=body)
            elif c.action == "updated":
                target.call("PUT", f"/integrations/{c.name}", json=body)
        return
    now = RealClock().now()

    def write() -> None:
        with target.writer.atomic():
            for c in changes:
                if c.action != "unchanged":
                    store.save(target.writer, c.integration, now, c.action == "created")

    try:
        target.write(write)
    except store.Conflict as exc:
        raise ManageError(str(exc)) from None


# --- the `integration` command -----------------------------------------------------------------


def add_cli(subparsers: Any, parent: argparse.ArgumentParser) -> None:
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


def _test(database: Database, name: str, config: Any) -> tuple[bool, str]:
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


def run_cli(args: argparse.Namespace, config: Any) -> int:
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
