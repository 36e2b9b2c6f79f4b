"""Job files: job definitions kept in git, read, diffed against the live jobs and written.

The domain half of `apply -f jobs.yaml` and `export` (the commands are
`itinerary/cli/apply.py`; the API's YAML export uses `export_yaml` too).
`apply` is declarative and idempotent: each job in the file is validated with
`itinerary.jobs.parse_job` (the API's own validation), matched by name against
the live jobs, and reported as created, updated or unchanged (`--prune` also
archives live jobs the file does not name). Nothing is written unless every job
in the file is valid. The CLI writes through a server's API or, as a short-lived
process, straight to the database (`apply_to_database`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from itinerary import audit, jobchecks, jobstore, masking
from itinerary.clock import RealClock
from itinerary.db import Database
from itinerary.jobs import JobSpec, ValidationError, parse_job

READ_ONLY = ("id", "createdAt", "updatedAt", "archivedAt")
FILE_KEYS = {"jobs", "integrations"}


class ApplyError(ValueError):
    """The file or the target cannot be applied; the message says where and why."""


@dataclass(frozen=True)
class Change:
    name: str
    action: str  # created | updated | unchanged | archived
    job: JobSpec


def definition(spec: JobSpec, *, masked: bool = True) -> dict[str, Any]:
    """A job as it is written in a file: the API's JSON without the server-assigned keys,
    header values masked unless it is to be sent (`masked=False`)."""
    shown = spec.public_dict() if masked else spec.to_dict()
    out = {k: v for k, v in shown.items() if k not in READ_ONLY}
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
        # A masked header value (an exported file) stands for the live job's value there.
        body = copy.deepcopy({k: v for k, v in body.items() if k not in READ_ONLY})
        live_job = by_name.get(body["name"]) if isinstance(body.get("name"), str) else None
        unmasked = masking.unmasked_job(body, live_job.to_dict() if live_job else None)
        if unmasked:
            errors.extend(f"{label}: {field}: {reason}" for field, reason in unmasked.items())
            continue
        try:
            spec = parse_job(body, keep_masked=True)
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
        elif definition(spec, masked=False) == definition(current, masked=False):
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
