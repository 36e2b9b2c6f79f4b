"""The checks for a job's constraints and action configs, one function per name.

Each check takes any JSON value and either returns the value to store or raises
`ValueError` with the reason; it never lets a wrong JSON type through to a later
`in` or `<` (a dict where a string belongs gave a 500 before). `jobs.parse_job`
puts each reason under its field path (`constraints.preRunHook`,
`actions[0].config`). A fuzz test throws random JSON at them.

Hand-written rather than pydantic models: the reasons are written for the people
who define jobs ("must be {"url": ...}"), the same checks serve the API, `apply`
and the CLI, and the JSON Schema in the OpenAPI document is short enough to keep
next to the route table (tests/test_openapi.py checks it against real answers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from itinerary import alertpolicy as policy
from itinerary import templating
from itinerary.durations import parse_duration

OVERLAP_POLICIES = ("skip", "queue", "replace")
HOOK_METHODS = ("GET", "POST", "PUT")
HOOK_RETRIES_MAX = 10
QUEUE_LIMIT_MAX = 1000
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def duration(value: Any, key: str) -> float:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"{key} must be a duration such as 30s, 5m or 1h30m")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def headers(value: Any, key: str = "headers") -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and _HEADER_NAME.match(k) and isinstance(v, str) and "\n" not in v
        for k, v in value.items()
    ):
        raise ValueError(f"{key} must map header names to one-line string values")
    return value


def _object(value: Any, example: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be {example}")
    unknown = set(value) - set(allowed)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {', '.join(allowed)}")
    return value


def job_ref(value: Any, key: str = "job") -> str | int:
    """A job named by its name or its numeric id."""
    if is_int(value) and value > 0:
        return value
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"{key} (a job name or id) is required")


# --- constraints --------------------------------------------------------------------------


def max_concurrent_runs(value: Any) -> Any:
    """`3`, or `{"limit": 3, "overlap": "skip|queue|replace", "queueLimit": 10}`."""
    if is_int(value):
        if value < 1:
            raise ValueError("must be a whole number of at least 1")
        return value
    example = '3 or {"limit": 3, "overlap": "queue", "queueLimit": 10}'
    _object(value, example, ("limit", "overlap", "queueLimit"))
    limit = value.get("limit")
    if not is_int(limit) or limit < 1:
        raise ValueError("limit must be a whole number of at least 1")
    overlap = value.get("overlap", "skip")
    if not isinstance(overlap, str) or overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}")
    if "queueLimit" in value:
        queue_limit = value["queueLimit"]
        if overlap != "queue":
            raise ValueError('queueLimit applies only with "overlap": "queue"')
        if not is_int(queue_limit) or not 0 <= queue_limit <= QUEUE_LIMIT_MAX:
            raise ValueError(f"queueLimit must be a whole number from 0 to {QUEUE_LIMIT_MAX}")
    return value


def hook(value: Any) -> dict[str, Any]:
    """preRunHook / postRunHook: `{url, timeout?, headers?, method?, retries?}`."""
    if isinstance(value, str):
        value = {"url": value}
    example = '{"url": "https://...", "timeout": "10s", "retries": 2}'
    _object(value, example, ("url", "timeout", "headers", "method", "retries"))
    url = value.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("url must be an http:// or https:// URL")
    if "timeout" in value and duration(value["timeout"], "timeout") <= 0:
        raise ValueError("timeout must be longer than zero")
    if "headers" in value:
        headers(value["headers"])
    method = value.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HOOK_METHODS:
        raise ValueError(f"method must be one of {', '.join(HOOK_METHODS)}")
    retries = value.get("retries", 0)
    if not is_int(retries) or not 0 <= retries <= HOOK_RETRIES_MAX:
        raise ValueError(f"retries must be a whole number from 0 to {HOOK_RETRIES_MAX}")
    return value


def previous_success(value: Any) -> dict[str, Any]:
    """requirePreviousSuccess: `{job, args?, within?, wait?}`."""
    if isinstance(value, str):
        value = {"job": value}
    example = '{"job": "name", "args": [...], "within": "24h", "wait": "10m"}'
    _object(value, example, ("job", "args", "within", "wait"))
    job_ref(value.get("job"))
    if "args" in value:
        try:
            str_list(value["args"])
        except ValueError:
            raise ValueError("args must be a list of strings") from None
    for key in ("within", "wait"):
        if key in value and duration(value[key], key) <= 0:
            raise ValueError(f"{key} must be longer than zero")
    return value


# --- action configs -----------------------------------------------------------------------


def retry(config: dict[str, Any]) -> None:
    _object(config, "an object", ("maxRetries", "backoff", "maxBackoff"))
    retries = config.get("maxRetries", 1)
    if not is_int(retries) or not 0 < retries <= 100:
        raise ValueError("maxRetries must be a whole number from 1 to 100")
    for key in ("backoff", "maxBackoff"):
        if key in config:
            duration(config[key], key)


def kick_off_job(config: dict[str, Any]) -> None:
    _object(config, "an object", ("job", "args", "resources", "env"))
    job_ref(config.get("job"))
    if "args" in config:
        try:
            str_list(config["args"])
        except ValueError:
            raise ValueError("args must be a list of strings") from None


def webhook(config: dict[str, Any]) -> None:
    keys = ("integration", "url", "template", "headers", *policy.KEYS)  # policy: alert policy
    _object(config, "an object", keys)
    integration, url = config.get("integration"), config.get("url")
    if integration is not None and not isinstance(integration, str):
        raise ValueError("integration must be a configured integration's name")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://", url)):
        raise ValueError("url must be an http:// or https:// URL")
    if integration is None and url is None:
        raise ValueError("integration (a configured integration's name) or url is required")
    if "headers" in config:
        headers(config["headers"])
    if "template" in config:
        if not isinstance(config["template"], str):
            raise ValueError("template must be a string (a Jinja2 template)")
        try:
            templating.check(config["template"])
        except templating.TemplateError as exc:
            raise ValueError(str(exc)) from None
    policy.parse(config)  # ValueError naming the key


def no_config(config: dict[str, Any]) -> None:
    if config:
        raise ValueError(f"unknown keys {sorted(config)}; this action takes no config")


ACTION_CONFIGS = {
    "retry": retry,
    "kickOffJob": kick_off_job,
    "webhook": webhook,
    "killAllInstances": no_config,
    "killLatestInstance": no_config,
    "skipNextInstance": no_config,
}
# Triggers an action type may not have: retrying a run that succeeded or never started.
REFUSED_TRIGGERS = {"retry": ("on_success", "on_start", "on_missed", "on_skipped")}
# The violations a `retry` may answer: those that fail an attempt that was started.
RETRIED_VIOLATIONS = ("maxAllowedRunTime", "postRunHook")


def kickoff_cycle(jobs: Iterable[Any]) -> list[str] | None:
    """A cycle of kickOffJob actions among `jobs` (JobSpecs) as names, the first repeated
    last (`["a", "b", "a"]`), or None. Jobs name their target by name or by id."""
    jobs = list(jobs)
    names = {j.id: j.name for j in jobs if j.id is not None}
    edges: dict[str, list[str]] = {}
    for job in jobs:
        for action in job.actions:
            if action.type == "kickOffJob":
                ref = action.config.get("job")
                target = names.get(ref) if is_int(ref) else ref
                if target is not None:
                    edges.setdefault(job.name, []).append(target)
    done: set[str] = set()
    for start in edges:
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = []
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        stack.append((start, iter(edges.get(start, ()))))
        while stack:
            node, targets = stack[-1]
            nxt = next(targets, None)
            if nxt is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif nxt in on_path:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append((nxt, iter(edges.get(nxt, ()))))
    return None


def cycle_message(cycle: list[str]) -> str:
    return f"kickOffJob actions would form a cycle: {' -> '.join(cycle)}"
