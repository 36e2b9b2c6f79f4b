"""Integrations from files and the command line: `apply -f` and `integration …`.

The domain half (the commands are `itinerary/cli/integrations.py`). Like `token`,
the `integration` command is a short-lived process writing the
database itself; a running server's webhook handler re-reads an integration at
most 30 s later (API edits reach it at once). Secrets are given as `${ENV_VAR}`
references, expanded from this process's environment, so they appear neither in
the shell history nor in the YAML kept in git; nothing printed ever shows one.

`apply -f` takes `integrations: [...]` next to `jobs: [...]` in the same file,
and applies them first (jobs name them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from itinerary.clock import RealClock
from itinerary.db import Database
from itinerary.webhooks import store
from itinerary.webhooks.integrations import (
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
