"""`apply -f jobs.yaml` and `export`: the commands (the file handling is `itinerary/jobfiles.py`).

With `--server URL` they go through the running server's API, so the scheduler
hears of each change at once; without it, this short-lived process writes the
database directly, like `token` does, and a running scheduler picks the change up
at its next index rebuild.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Any

import peewee as pw
import requests

from itinerary import audit, jobstore
from itinerary.config import Config
from itinerary.db import Database
from itinerary.jobfiles import (
    ApplyError,
    Change,
    apply_to_database,
    definition,
    export_yaml,
    plan,
    read_documents,
)
from itinerary.jobs import JobSpec, parse_job
from itinerary.models import bind
from itinerary.webhooks import manage

HTTP_TIMEOUT_S = 30


class Server:
    """The few API calls `apply` and `export` make, with the caller's bearer token."""

    def __init__(self, url: str, token: str | None) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers[audit.VIA_HEADER] = "apply"  # recorded as "apply (<token>)"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.session.request(method, self.base + path, timeout=HTTP_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise ApplyError(f"--server: {exc.__class__.__name__}: {exc}") from None
        if resp.status_code >= 400:
            try:
                error = resp.json()["error"]
                detail = "; ".join(f"{k}: {v}" for k, v in error["fields"].items())
                message = error["message"] + (f" ({detail})" if detail else "")
            except (ValueError, KeyError, TypeError):
                message = resp.text[:200]
            raise ApplyError(f"{method} {path}: {resp.status_code} {message}")
        return (
            resp.json()
            if resp.content and "json" in resp.headers.get("Content-Type", "")
            else resp.text
        )

    def live_jobs(self) -> list[JobSpec]:
        found, cursor = [], None
        while True:
            page = self.call(
                "GET", "/jobs", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}
            )
            for item in page["items"]:
                found.append(replace(parse_job(item, keep_masked=True), id=item["id"]))
            cursor = page["nextCursor"]
            if not cursor:
                return found

    def apply(self, changes: list[Change]) -> None:
        for change in changes:
            if change.action == "created":
                self.call("POST", "/jobs", json=definition(change.job, masked=False))
            elif change.action == "updated":
                self.call(
                    "PUT", f"/jobs/{change.job.id}", json=definition(change.job, masked=False)
                )
            elif change.action == "archived":
                self.call("DELETE", f"/jobs/{change.job.id}")


def add_cli(subparsers: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register `apply` and `export`; `parent` carries the settings flags (--db-dsn …)."""
    run = subparsers.add_parser("apply", parents=[parent], help="create/update jobs from a file")
    run.add_argument("-f", "--file", required=True, help="YAML or JSON file of jobs ('-': stdin)")
    run.add_argument("--dry-run", action="store_true", help="report, change nothing")
    run.add_argument("--prune", action="store_true", help="archive live jobs not in the file")
    _server_flags(run)
    run.set_defaults(handler=run_apply)
    out = subparsers.add_parser("export", parents=[parent], help="print all jobs as YAML")
    _server_flags(out)
    out.set_defaults(handler=run_export)


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="a running Itinerary's URL (default: the database)")
    parser.add_argument("--token", help="API token for --server [env: ITINERARY_TOKEN]")


def _fail(exc: Exception) -> int:
    print(f"itinerary: {exc}", file=sys.stderr)  # noqa: T201 - the one line the user sees
    return 1


def _live(args: argparse.Namespace, config: Config) -> tuple[list[JobSpec], Any]:
    """The live jobs and the target to write to (a Server or a Database)."""
    if args.server:
        server = Server(args.server, args.token or os.environ.get("ITINERARY_TOKEN"))
        return server.live_jobs(), server
    database = Database(config.dsn, pool_size=1)
    bind(database)
    return database.read(jobstore.load_jobs), database


def run_apply(args: argparse.Namespace, config: Config) -> int:
    target = None
    try:
        source = "stdin" if args.file == "-" else args.file
        try:
            text = sys.stdin.read() if args.file == "-" else open(args.file).read()
        except OSError as exc:
            raise ApplyError(f"-f: cannot read {args.file}: {exc.strerror}") from None
        bodies = read_documents(text, source)
        wanted = manage.read_integrations(text, source)
        live, target = _live(args, config)
        changes = plan(bodies, live, prune=args.prune, source=source)
        integrations = manage.plan(wanted, manage.live(target)) if wanted else []
        if not args.dry_run:
            manage.apply_changes(target, integrations)  # first: jobs name them
            if isinstance(target, Server):
                target.apply(changes)
            else:
                apply_to_database(target, changes)
        for i in integrations:
            print(f"{i.action:9} integration {i.name}")  # noqa: T201 - the report
        for change in changes:
            print(f"{change.action:9} {change.name}")  # noqa: T201 - the report
        counts = {
            a: sum(c.action == a for c in changes)
            for a in ("created", "updated", "unchanged", "archived")
        }
        summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n or a != "archived")
        print(summary + (" (dry run: nothing changed)" if args.dry_run else ""))  # noqa: T201
        return 0
    except (ApplyError, manage.ManageError, pw.DatabaseError) as exc:
        return _fail(exc)
    finally:
        if isinstance(target, Database):
            target.close()


def run_export(args: argparse.Namespace, config: Config) -> int:
    target = None
    try:
        live, target = _live(args, config)
        sys.stdout.write(export_yaml(live))
        return 0
    except (ApplyError, pw.DatabaseError) as exc:
        return _fail(exc)
    finally:
        if isinstance(target, Database):
            target.close()
