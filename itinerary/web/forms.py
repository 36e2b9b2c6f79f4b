"""The job form: a JobSpec as form values, and form values back as the API's job JSON.

The server is the only validator: `to_body` only reshapes what the form sent
(lines into lists, `KEY=value` lines into maps, JSON or YAML text into
objects) and `parse_job`, the API's validator, judges the result, so the form
and the API accept exactly the same jobs. Text that cannot even be read (bad
YAML in podSpec) is reported under its field like any other error.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from itinerary import masking
from itinerary.jobs import JobSpec
from itinerary.web import formrows

DURATION_CONSTRAINTS = (
    ("catchUpWindow", "After downtime, start missed slots up to this long ago", "1h"),
    ("maxExpectedRunTime", "Flag a run as behind schedule after this long", "20m"),
    ("maxAllowedRunTime", "Kill a run still going after this long", "1h"),
)
MODIFIABLE = ("args", "resources", "env")
RESOURCE_KEYS = (
    ("requests", "cpu"),
    ("requests", "memory"),
    ("limits", "cpu"),
    ("limits", "memory"),
)
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _yaml_dump(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def values_of(job: JobSpec | None) -> dict[str, Any]:
    """Form values for a job (empty ones for a new job)."""
    if job is None:
        return {
            "name": "",
            "description": "",
            "tags": "",
            "enabled": True,
            "schedule": "",
            "timezone": "UTC",
            "namespace": "default",
            "images": "",
            "commands": "",
            "args": "",
            "serviceAccounts": "",
            "env": "",
            "envSecret": "",
            "podSpec": "",
            "resources": {f"{a}.{b}": "" for a, b in RESOURCE_KEYS},
            "resourcesExtra": "",
            "rows": {},
            "manuallyRunnable": True,
            "modifiable": [],
            "updatedAt": "",
        }
    resources = job.resources or {}
    return {
        "name": job.name,
        "description": job.description,
        "tags": ", ".join(job.tags),
        "enabled": job.enabled,
        "schedule": job.schedule or "",
        "timezone": job.timezone,
        "namespace": job.namespace,
        "images": "\n".join(job.images),
        "commands": "\n".join(shlex.join(c) for c in job.commands),
        "args": "\n".join(job.args),
        "serviceAccounts": "\n".join(job.service_accounts),
        "env": "\n".join(f"{k}={v}" for k, v in job.env.items()),
        "envSecret": _yaml_dump(job.env_secret)
        if isinstance(job.env_secret, dict)
        else "\n".join(job.env_secret or ()),
        "podSpec": _yaml_dump(job.pod_spec),
        "resources": {
            f"{a}.{b}": str((resources.get(a) or {}).get(b, "")) for a, b in RESOURCE_KEYS
        },
        "resourcesExtra": _yaml_dump(_extra_resources(resources)),
        "rows": formrows.rows_of(job),
        "manuallyRunnable": job.manually_runnable,
        "modifiable": list(job.manual_run_modifiable_fields),
        "updatedAt": job.updated_at.isoformat() if job.updated_at else "",
    }


def _extra_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """What the four cpu/memory inputs do not show (GPUs, ephemeral storage, other keys)."""
    known = set(RESOURCE_KEYS)
    out: dict[str, Any] = {}
    for group, value in resources.items():
        if isinstance(value, dict):
            rest = {k: v for k, v in value.items() if (group, k) not in known}
            if rest:
                out[group] = rest
        else:
            out[group] = value
    return out


def _structured(text: str, field: str, errors: dict[str, str]) -> Any:
    """JSON or YAML text as a value (None when empty)."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        errors[field] = f"is neither valid JSON nor valid YAML{where}"
        return None


def to_body(form: Any, stored: JobSpec | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The job JSON the API would take, and errors for text that could not be read.

    `stored` is the job being edited: a masked header value sent back keeps its value.
    """
    errors: dict[str, str] = {}
    get = lambda name: (form.getunicode(name) or "").replace("\r\n", "\n")  # noqa: E731
    commands = []
    for i, line in enumerate(_lines(get("commands"))):
        try:
            commands.append(shlex.split(line))
        except ValueError as exc:
            errors["commands"] = f"line {i + 1}: {exc}"
    env: dict[str, str] = {}
    for line in _lines(get("env")):
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            errors["env"] = f"{line[:40]!r} is not KEY=value"
        env[key.strip()] = value
    resources: dict[str, dict[str, str]] = {}
    for a, b in RESOURCE_KEYS:
        value = get(f"resources.{a}.{b}").strip()
        if value:
            resources.setdefault(a, {})[b] = value
    extra = _structured(get("resourcesExtra"), "resources", errors)
    if extra is not None:
        if not isinstance(extra, dict):
            errors["resources"] = (
                "other resources must be a mapping (requests: {...}, limits: {...})"
            )
        else:
            for group, value in extra.items():
                if isinstance(value, dict) and isinstance(resources.get(group), dict):
                    resources[group] = {**value, **resources[group]}
                else:
                    resources[group] = value
    rows = formrows.Reader(get, list(form.keys()), stored)
    constraints, actions = rows.constraints(), rows.actions()
    errors.update(rows.errors)
    env_secret_text = get("envSecret")
    env_secret: Any = None
    if ":" in env_secret_text:
        env_secret = _structured(env_secret_text, "envSecret", errors)
    elif _lines(env_secret_text):
        env_secret = _lines(env_secret_text)
    body = {
        "name": get("name").strip(),
        "description": get("description"),
        "tags": [t.strip() for t in get("tags").split(",") if t.strip()],
        "enabled": bool(form.get("enabled")),
        "schedule": get("schedule").strip() or None,
        "timezone": get("timezone").strip() or "UTC",
        "namespace": get("namespace").strip() or "default",
        "images": _lines(get("images")),
        "commands": commands,
        "args": _lines(get("args")),
        "serviceAccounts": _lines(get("serviceAccounts")),
        "env": env,
        "envSecret": env_secret,
        "resources": resources or None,
        "podSpec": _structured(get("podSpec"), "podSpec", errors),
        "constraints": constraints,
        "actions": actions,
        "manuallyRunnable": bool(form.get("manuallyRunnable")),
        "manualRunModifiableFields": [m for m in MODIFIABLE if form.get(f"modifiable.{m}")],
    }
    return body, errors


def form_values(form: Any, drop: int | None = None, add: str | None = None) -> dict[str, Any]:
    """What the user typed, to show the form again after a refusal (or with a row
    removed or added: see `formrows.resubmitted`)."""
    get = lambda name: form.getunicode(name) or ""  # noqa: E731
    out = values_of(None)
    for key in (
        "name",
        "description",
        "tags",
        "schedule",
        "timezone",
        "namespace",
        "images",
        "commands",
        "args",
        "serviceAccounts",
        "env",
        "envSecret",
        "podSpec",
        "resourcesExtra",
        "updatedAt",
    ):
        out[key] = get(key)
    out["enabled"] = bool(form.get("enabled"))
    out["manuallyRunnable"] = bool(form.get("manuallyRunnable"))
    out["modifiable"] = [m for m in MODIFIABLE if form.get(f"modifiable.{m}")]
    out["resources"] = {f"{a}.{b}": get(f"resources.{a}.{b}") for a, b in RESOURCE_KEYS}
    out["rows"] = formrows.resubmitted(form, drop, add)
    return out


def differences(stored: JobSpec, body: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields where the stored job and the submitted form differ: (field, stored, yours),
    header values compared in clear and shown masked."""
    now, shown, yours = stored.to_dict(), stored.public_dict(), masking.masked_job(body)
    out = []
    for key, value in body.items():
        if json.dumps(now.get(key), sort_keys=True, default=str) != json.dumps(
            value, sort_keys=True, default=str
        ):
            out.append((key, shown.get(key), yours.get(key)))
    return out
