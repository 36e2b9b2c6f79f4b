"""Job definitions: the one in-memory shape shared by the API, the loop and the executors.

`parse_job` turns the JSON a user sends (design.md, "A job definition") into a
frozen `JobSpec`, collecting every bad field with its reason so an API error or
an `apply` report can name them all at once. `JobSpec.to_dict` is the inverse.

Why one long module: `JobSpec` and `parse_job` are one shape and its validation; the
checks of each constraint and action are apart (jobchecks.py).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import kubernetes_validate

from itinerary import jobchecks, masking
from itinerary.cron import CronError, Schedule, zone
from itinerary.durations import parse_duration
from itinerary.ids import JobId

# Dimension tables: ids fixed by the seed, never reused (migrations insert them).
CONSTRAINT_TYPES = {
    "maxConcurrentRuns": 1,
    "catchUp": 2,
    "preRunHook": 3,
    "postRunHook": 4,
    "catchUpWindow": 5,
    "maxExpectedRunTime": 6,
    "maxAllowedRunTime": 7,
    "requirePreviousSuccess": 8,
}
ACTION_TYPES = {
    "retry": 1,
    "kickOffJob": 2,
    "webhook": 3,
    "killAllInstances": 4,
    "killLatestInstance": 5,
    "skipNextInstance": 6,
}
TRIGGERS = (
    "on_failure",
    "on_violation",
    "on_success",
    "on_start",
    "on_missed",
    "on_skipped",
    "on_anomaly",
)
# What an anomaly (found after the fact, for a job: itinerary/anomaly/actions.py) can do.
ANOMALY_ACTIONS = ("webhook", "killAllInstances", "killLatestInstance", "skipNextInstance")
MODIFIABLE_FIELDS = ("args", "resources", "env")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 52
DURATION_CONSTRAINTS = ("catchUpWindow", "maxExpectedRunTime", "maxAllowedRunTime")
HOOK_CONSTRAINTS = ("preRunHook", "postRunHook")
KUBERNETES_SCHEMA_VERSION = "1.37.0"  # podSpecs are checked against this API version


class ValidationError(ValueError):
    """One or more invalid fields: `fields` maps a field path to its reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Action:
    type: str
    trigger: str
    config: dict[str, Any] = field(default_factory=dict)
    constraint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "trigger": self.trigger, "config": self.config}
        if self.constraint:
            out["constraint"] = self.constraint
        return out


@dataclass(frozen=True)
class JobSpec:
    """A job definition. Durations in `constraints` are kept as the user wrote them."""

    name: str
    id: int | None = None
    description: str = ""
    schedule: str | None = None
    timezone: str = "UTC"
    enabled: bool = True
    paused_reason: str | None = None
    namespace: str = "default"
    images: tuple[str, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()
    args: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    env_secret: Any = None
    resources: dict[str, Any] | None = None
    pod_spec: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    constraints: dict[str, Any] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    manually_runnable: bool = True
    manual_run_modifiable_fields: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    archived_at: datetime | None = None

    @property
    def cron(self) -> Schedule | None:
        """The parsed schedule, or None for a manual-only job."""
        return Schedule(self.schedule, self.timezone) if self.schedule else None

    def seconds(self, constraint: str) -> float | None:
        """A duration constraint in seconds, or None when unset."""
        value = self.constraints.get(constraint)
        return None if value is None else parse_duration(value)

    def with_id(self, job_id: int) -> JobSpec:
        return replace(self, id=job_id)

    @property
    def stored_id(self) -> JobId:
        """The id of a job read from the database (only a job not saved yet has none)."""
        if self.id is None:
            raise ValueError(f"job {self.name!r} has not been saved")
        return JobId(self.id)

    def public_dict(self) -> dict[str, Any]:
        """`to_dict` as readers see it: header values masked (`itinerary.masking`)."""
        return masking.masked_job(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON shape (camelCase), secrets in clear: for comparing and storing."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "pausedReason": self.paused_reason,
            "namespace": self.namespace,
            "images": list(self.images),
            "commands": [list(c) for c in self.commands],
            "args": list(self.args),
            "serviceAccounts": list(self.service_accounts),
            "env": dict(self.env),
            "envSecret": self.env_secret,
            "resources": self.resources,
            "podSpec": self.pod_spec,
            "tags": list(self.tags),
            "constraints": dict(self.constraints),
            "actions": [a.to_dict() for a in self.actions],
            "manuallyRunnable": self.manually_runnable,
            "manualRunModifiableFields": list(self.manual_run_modifiable_fields),
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "archivedAt": _iso(self.archived_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# camelCase JSON key -> (JobSpec attribute, checker). Read-only keys are accepted and ignored
# on input so that a GET body can be PUT back unchanged.
READ_ONLY_KEYS = ("id", "createdAt", "updatedAt", "archivedAt")


def _str(value: Any, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not allow_empty and not value.strip():
        raise ValueError("must not be empty")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _name(value: Any) -> str:
    name = _str(value, allow_empty=False)
    if len(name) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    if not NAME_RE.match(name):
        raise ValueError(
            "must be lower-case letters, digits and '-', starting and ending with a letter or "
            "digit (a DNS-1123 label)"
        )
    return name


def _commands(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not all(
        isinstance(c, list) and c and all(isinstance(a, str) for a in c) for c in value
    ):
        raise ValueError('must be a list of non-empty argv lists, e.g. [["python", "-m", "x"]]')
    return tuple(tuple(c) for c in value)


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("must be an object of string names to string values")
    for key in value:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
    return dict(value)


def _env_secret(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v.count("/") == 1 for k, v in value.items()
    ):
        return dict(value)
    raise ValueError('must be a list of Secret names or an object {"NAME": "secret/key"}')


def _resources(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"requests", "limits"}:
        raise ValueError('must be {"requests": {...}, "limits": {...}}')
    for part, amounts in value.items():
        if not isinstance(amounts, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) for k, v in amounts.items()
        ):
            raise ValueError(f"{part} must map resource names to quantities such as '500m'")
        for name, qty in amounts.items():
            if not re.match(r"^[0-9.]+([numkMGTPE]|[KMGTPE]i)?$", str(qty)):
                raise ValueError(f"{part}.{name}: {qty!r} is not a Kubernetes quantity")
    return value


def _pod_spec(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("containers"), list):
        raise ValueError("must be a Kubernetes PodSpec object with a 'containers' list")
    # The cluster would refuse it only at run time; strict mode also catches misspelt fields.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": value}
    try:
        kubernetes_validate.validate(pod, KUBERNETES_SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in list(exc.path)[1:])
        raise ValueError(f"{where + ': ' if where else ''}{exc.message}") from None
    return value


def _constraints(value: Any, errors: dict[str, str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors["constraints"] = "must be an object"
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"constraints.{key}"
        try:
            if key not in CONSTRAINT_TYPES:
                raise ValueError(f"unknown constraint; known: {', '.join(CONSTRAINT_TYPES)}")
            if key == "maxConcurrentRuns":
                item = jobchecks.max_concurrent_runs(item)
            elif key == "catchUp":
                _bool(item)
            elif key in DURATION_CONSTRAINTS:
                if jobchecks.duration(item, key) <= 0 and key != "catchUpWindow":
                    raise ValueError("must be longer than zero")
            elif key in HOOK_CONSTRAINTS:
                item = jobchecks.hook(item)
            elif key == "requirePreviousSuccess":
                item = jobchecks.previous_success(item)
            out[key] = item
        except ValueError as exc:
            errors[path] = str(exc)
    expected, allowed = out.get("maxExpectedRunTime"), out.get("maxAllowedRunTime")
    if expected is not None and allowed is not None:
        if parse_duration(expected) > parse_duration(allowed):
            errors["constraints.maxExpectedRunTime"] = "must not exceed maxAllowedRunTime"
    return out


def _action(value: Any, path: str, errors: dict[str, str]) -> Action | None:
    if not isinstance(value, dict):
        errors[path] = 'must be {"type", "trigger", "config"}'
        return None
    unknown = set(value) - {"type", "trigger", "config", "constraint"}
    if unknown:
        errors[path] = f"unknown keys {sorted(unknown)}"
        return None
    kind, trigger = value.get("type"), value.get("trigger")
    config, constraint = value.get("config") or {}, value.get("constraint")
    start = len(errors)
    if not isinstance(kind, str) or kind not in ACTION_TYPES:
        errors[f"{path}.type"] = f"must be one of {', '.join(ACTION_TYPES)}"
    if not isinstance(trigger, str) or trigger not in TRIGGERS:
        errors[f"{path}.trigger"] = f"must be one of {', '.join(TRIGGERS)}"
    elif isinstance(kind, str) and trigger in jobchecks.REFUSED_TRIGGERS.get(kind, ()):
        errors[f"{path}.trigger"] = f"{kind} cannot be taken {trigger}"
    if trigger == "on_violation":
        if not isinstance(constraint, str) or constraint not in CONSTRAINT_TYPES:
            errors[f"{path}.constraint"] = "on_violation needs the name of a constraint"
        elif kind == "retry" and constraint not in jobchecks.RETRIED_VIOLATIONS:
            errors[f"{path}.constraint"] = (
                f"retry on_violation applies to {' and '.join(jobchecks.RETRIED_VIOLATIONS)} "
                "(the violations that fail a started attempt)"
            )
    elif constraint is not None:
        errors[f"{path}.constraint"] = "only on_violation actions name a constraint"
    if trigger == "on_anomaly" and kind in ACTION_TYPES and kind not in ANOMALY_ACTIONS:
        errors[f"{path}.type"] = f"on_anomaly actions are one of {', '.join(ANOMALY_ACTIONS)}"
    if not isinstance(config, dict):
        errors[f"{path}.config"] = "must be an object"
    elif f"{path}.type" not in errors:
        try:
            _action_config(cast(str, kind), config)
        except ValueError as exc:
            errors[f"{path}.config"] = str(exc)
    if len(errors) > start:
        return None
    return Action(
        type=cast(str, kind), trigger=cast(str, trigger), config=config, constraint=constraint
    )


def _action_config(kind: str, config: dict[str, Any]) -> None:
    jobchecks.ACTION_CONFIGS[kind](config)
    if kind == "kickOffJob":  # overrides for the child run, checked like the job's own
        if "resources" in config:
            _resources(config["resources"])
        if "env" in config:
            _env(config["env"])


_SIMPLE: dict[str, tuple[str, Any]] = {
    "description": ("description", _str),
    "timezone": ("timezone", lambda v: zone(v) and v),
    "enabled": ("enabled", _bool),
    "pausedReason": ("paused_reason", lambda v: None if v is None else _str(v)),
    "namespace": ("namespace", _name),
    "images": ("images", _str_list),
    "commands": ("commands", _commands),
    "args": ("args", _str_list),
    "serviceAccounts": ("service_accounts", _str_list),
    "env": ("env", _env),
    "envSecret": ("env_secret", _env_secret),
    "resources": ("resources", _resources),
    "podSpec": ("pod_spec", _pod_spec),
    "tags": ("tags", _str_list),
    "manuallyRunnable": ("manually_runnable", _bool),
}
KNOWN_KEYS = (
    set(_SIMPLE)
    | set(READ_ONLY_KEYS)
    | {"name", "schedule", "constraints", "actions", "manualRunModifiableFields"}
)


def parse_job(body: Any, *, base: JobSpec | None = None, keep_masked: bool = False) -> JobSpec:
    """Validate a job body; `base` is the stored job for a partial update (PUT keeps the rest).

    A masked header value takes `base`'s value at the same place, and is refused where there
    is none; `keep_masked` leaves masked values as they are (a file compared with the jobs
    another server shows, which that server resolves when they are sent to it).
    """
    if not isinstance(body, dict):
        raise ValidationError({"body": "must be a JSON object"})
    body = dict(body)  # masked header values are put back below, never in the caller's body
    for key in ("constraints", "actions"):
        if key in body:
            body[key] = copy.deepcopy(body[key])
    errors: dict[str, str] = {}
    if not keep_masked:
        errors = masking.unmasked_job(body, base.to_dict() if base else None)
    for key in sorted(set(body) - KNOWN_KEYS):
        errors[key] = "unknown field"
    values: dict[str, Any] = {}
    if "name" in body or base is None:
        try:
            values["name"] = _name(body.get("name"))
        except ValueError as exc:
            errors["name"] = "is required" if body.get("name") is None else str(exc)
    for key, (attr, check) in _SIMPLE.items():
        if key in body and not (body[key] is None and key in ("pausedReason",)):
            try:
                values[attr] = check(body[key])
            except (ValueError, CronError) as exc:
                errors[key] = exc.reason if isinstance(exc, CronError) else str(exc)
        elif key == "pausedReason" and key in body:
            values[attr] = None
    if "tags" in values:
        values["tags"] = tuple(dict.fromkeys(t.strip() for t in values["tags"] if t.strip()))
        if any(len(t) > 100 for t in values["tags"]):
            errors["tags"] = "each tag must be at most 100 characters"
    if "schedule" in body:
        schedule = body["schedule"]
        if schedule is not None and not isinstance(schedule, str):
            errors["schedule"] = "must be a cron expression string, or null for manual-only"
        else:
            values["schedule"] = (schedule or "").strip() or None
            try:
                if values["schedule"]:
                    Schedule(values["schedule"], "UTC")
            except CronError as exc:
                errors["schedule"] = exc.reason
    if "constraints" in body:
        values["constraints"] = _constraints(body["constraints"] or {}, errors)
    if "actions" in body:
        actions = body["actions"] or []
        if not isinstance(actions, list):
            errors["actions"] = "must be a list"
        else:
            parsed = [_action(a, f"actions[{i}]", errors) for i, a in enumerate(actions)]
            values["actions"] = tuple(a for a in parsed if a)
    if "manualRunModifiableFields" in body:
        try:
            mods = _str_list(body["manualRunModifiableFields"])
            bad = [m for m in mods if m not in MODIFIABLE_FIELDS]
            if bad:
                raise ValueError(
                    f"{bad} not modifiable; choose from {', '.join(MODIFIABLE_FIELDS)}"
                )
            values["manual_run_modifiable_fields"] = mods
        except ValueError as exc:
            errors["manualRunModifiableFields"] = str(exc)
    job = replace(base, **values) if base else None
    if job is None and "name" in values:
        job = JobSpec(**values)
    if job is not None:
        _check_whole(job, errors)
    if errors:
        raise ValidationError(errors)
    assert job is not None
    return job


def _check_whole(job: JobSpec, errors: dict[str, str]) -> None:
    """Rules that involve several fields at once."""
    if job.schedule and "schedule" not in errors and "timezone" not in errors:
        try:
            Schedule(job.schedule, job.timezone)
        except CronError as exc:
            errors[exc.field] = exc.reason
    if job.pod_spec is None and not job.commands and not job.images and "commands" not in errors:
        errors["commands"] = "a job needs commands (and images for Kubernetes) or a podSpec"
    if job.images and job.commands and len(job.commands) > len(job.images):
        errors["commands"] = "there are more commands than images; give one image per container"
    if job.pod_spec is not None and (job.images or job.commands):
        errors["podSpec"] = "give either podSpec or images/commands, not both"
