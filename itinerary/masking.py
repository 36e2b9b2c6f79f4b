"""Secrets as every reader sees them: masked, never echoed back.

A stored secret (an integration's key or URL token, a hook's or a webhook action's header
value) is shown as `MASK` plus its last four characters when it is long enough to spare
them. A masked value sent back in a write keeps the stored one, so a definition read from
the API, the UI or an export can be edited and saved again without retyping its secrets.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

MASK = "••••"
HOOKS = ("preRunHook", "postRunHook")


def mask(value: Any) -> str:
    text = str(value)
    if is_masked(text):  # masked already (a definition read from the API)
        return text
    return MASK + (text[-4:] if len(text) >= 12 else "")


def is_masked(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MASK)


def _header_maps(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, headers) of a job definition's hooks and webhook actions."""
    constraints = definition.get("constraints")
    if isinstance(constraints, dict):
        for hook in HOOKS:
            value = constraints.get(hook)
            if isinstance(value, dict) and isinstance(value.get("headers"), dict):
                yield f"constraints.{hook}.headers", value["headers"]
    actions = definition.get("actions")
    if isinstance(actions, list):
        for i, action in enumerate(actions):
            config = action.get("config") if isinstance(action, dict) else None
            if isinstance(config, dict) and isinstance(config.get("headers"), dict):
                yield f"actions[{i}].config.headers", config["headers"]


def masked_job(definition: dict[str, Any]) -> dict[str, Any]:
    """A job definition (the API's JSON) with every header value masked."""
    out = copy.deepcopy(definition)
    for _, headers in _header_maps(out):
        for name, value in headers.items():
            headers[name] = mask(value)
    return out


def unmasked_job(body: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, str]:
    """Put the stored value back for every masked header value in `body` (in place).

    A header is matched by its place: the same hook, or the action at the same position,
    and the same header name. Returns errors by field path for masked values with no stored
    counterpart (a new header, or a definition copied from another server).
    """
    known = dict(_header_maps(stored or {}))
    errors = {}
    for path, headers in _header_maps(body):
        for name, value in headers.items():
            if not is_masked(value):
                continue
            kept = known.get(path, {}).get(name)
            if kept is None:
                errors[f"{path}.{name}"] = (
                    "is a masked value with no stored value to keep: send the value itself"
                )
            else:
                headers[name] = kept
    return errors
