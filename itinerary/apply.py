"""`apply -f jobs.yaml` and `export`: job definitions kept in git.

`apply` is declarative and idempotent: each job in the file is validated with
`itinerary.jobs.parse_job` (the API's own validation), matched by name against
the live jobs, and reported as created, updated or unchanged (`--prune` also
archives live jobs the file does not name). Nothing is written unless every job
in the file is valid. With `--server URL` it goes through the running server's
API, so the scheduler hears of each change at once; without it, this short-lived
process writes the database directly, like `token` does, and a running
scheduler picks the change up at its next index rebuild.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import peewee as pw
import requests
import yaml

from itinerary import audit, jobchecks, jobstore
from itinerary.clock import RealClock
from itinerary.db import Database, bind
from itinerary.jobs import JobSpec, ValidationError, parse_job
from itinerary.webhooks import manage

READ_ONLY = ("id", "createdAt", "updatedAt", "archivedAt")
FILE_KEYS = {"jobs", "integrations"}
HTTP_TIMEOUT_S = 30


class ApplyError(ValueError):
    """The file or the target cannot be applied; the message says where and why."""


@dataclass(frozen=True)
class Change:
    name: str
    action: str  # created | updated | unchanged | archived
    job: JobSpec


def definition(spec: JobSpec) -> dict[str, Any]:
    """A job as it is written in a file: the API's JSON without the server-assigned keys."""
    out = {k: v for k, v in spec.to_dict().items() if k not in READ_ONLY}
    out["tags"] = sorted(out["tags"])
    return out


def export_yaml(specs: Iterable[JobSpec]) -> str:
    # The C dumper (libyaml) when PyYAML has it: several times faster on large exports.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        {"jobs": [definition(s) for s in specs]},
        Dumper=dumper,
        sort_keys=False,
        allow_unicode=True,
    )


def read_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Job bodies from YAML (or JSON): `jobs: [...]`, a list, or one job per document."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ApplyError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    bodies: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and set(doc) & FILE_KEYS and set(doc) <= FILE_KEYS:
            doc = doc.get("jobs") or []  # integrations: itinerary/webhooks/manage.py
        bodies.extend(doc if isinstance(doc, list) else [doc])
    if not all(isinstance(b, dict) for b in bodies):
        raise ApplyError(f"{source}: each job must be a mapping of fields")
    return bodies


def plan(
    bodies: list[dict[str, Any]], live: list[JobSpec], *, prune: bool, source: str
) -> list[Change]:
    """What applying `bodies` to the `live` jobs does; ApplyError naming every bad field."""
    by_name = {j.name: j for j in live}
    errors: list[str] = []
    changes: list[Change] = []
    seen: set[str] = set()
    for i, body in enumerate(bodies):
        label = f"jobs[{i}] ({body.get('name', '?')})"
        try:
            spec = parse_job({k: v for k, v in body.items() if k not in READ_ONLY})
        except ValidationError as exc:
            errors.extend(f"{label}: {field}: {reason}" for field, reason in exc.fields.items())
            continue
        if spec.name in seen:
            errors.append(f"{label}: name: {spec.name!r} appears twice in the file")
            continue
        seen.add(spec.name)
        current = by_name.get(spec.name)
        if current is None:
            changes.append(Change(spec.name, "created", spec))
        elif definition(spec) == definition(current):
            changes.append(Change(spec.name, "unchanged", current))
        else:
            changes.append(Change(spec.name, "updated", spec.with_id(current.id)))  # type: ignore[arg-type]
    if not errors:  # the jobs as they will be: the file's, then the live ones it leaves
        kept = [j for j in live if j.name not in seen]
        cycle = jobchecks.kickoff_cycle([c.job for c in changes] + kept)
        if cycle is not None:
            errors.append(f"actions: {jobchecks.cycle_message(cycle)}")
    if errors:
        raise ApplyError(f"{source}: " + "; ".join(errors))
    if prune:
        changes.extend(Change(j.name, "archived", j) for j in live if j.name not in seen)
    return changes


# --- targets: the database directly, or a server's API ------------------------------------


def apply_to_database(database: Database, changes: list[Change]) -> None:
    """Write every change in one transaction (this process is a short-lived writer)."""
    now = RealClock().now()
    ids = [c.job.id for c in changes if c.action == "updated" and c.job.id is not None]
    before = {j.id: j for j in database.read(jobstore.load_jobs, ids)} if ids else {}

    def write() -> None:
        with database.writer.atomic():
            for change in changes:
                if change.action in ("created", "updated"):
                    stored = jobstore.save_job(database.writer, change.job, now)
                    entry = audit.entry_for(before.get(change.job.id), change.job, "apply")
                    audit.write(database.writer, stored.id, entry, now)  # type: ignore[arg-type]
                elif change.action == "archived":
                    job_id: int = change.job.id  # type: ignore[assignment]
                    jobstore.archive_job(database.writer, job_id, now)
                    audit.write(database.writer, job_id, audit.Entry("apply", "archived"), now)

    try:
        database.write(write)
    except jobstore.Conflict as exc:
        raise ApplyError(str(exc)) from None


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
                found.append(replace(parse_job(item), id=item["id"]))
            cursor = page["nextCursor"]
            if not cursor:
                return found

    def apply(self, changes: list[Change]) -> None:
        for change in changes:
            if change.action == "created":
                self.call("POST", "/jobs", json=definition(change.job))
            elif change.action == "updated":
                self.call("PUT", f"/jobs/{change.job.id}", json=definition(change.job))
            elif change.action == "archived":
                self.call("DELETE", f"/jobs/{change.job.id}")


# --- command line ----------------------------------------------------------------------------


def add_cli(subparsers: Any, parent: argparse.ArgumentParser) -> None:
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


def _live(args: argparse.Namespace, config: Any) -> tuple[list[JobSpec], Any]:
    """The live jobs and the target to write to (a Server or a Database)."""
    if args.server:
        server = Server(args.server, args.token or os.environ.get("ITINERARY_TOKEN"))
        return server.live_jobs(), server
    database = Database(config.dsn, pool_size=1)
    bind(database)
    return database.read(jobstore.load_jobs), database


def run_apply(args: argparse.Namespace, config: Any) -> int:
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


def run_export(args: argparse.Namespace, config: Any) -> int:
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
