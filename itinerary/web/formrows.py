"""The job form's constraints and actions as rows of real inputs (P7), not YAML.

Every value lives under its form field name (`constraints.preRunHook.url`,
`actions.0.config.maxRetries`), so the stored job, the submitted form and a
re-rendered form are one flat dict of strings. Two rules make an unchanged
edit save the identical job JSON: scalars are shown as text that reads back as
the same JSON type (a number bare, a string that looks like a number quoted),
and a hidden `.shape` field remembers a shorthand (`preRunHook: "https://…"`,
`maxConcurrentRuns: 3`) or an empty map. Header values are secrets: shown as
`masking.mask()` shows them, and a masked value sent back keeps the stored
one, as the integrations and job APIs do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES, TRIGGERS, JobSpec
from itinerary.masking import MASK, mask

Get = Callable[[str], str]
DURATIONS = ("catchUpWindow", "maxExpectedRunTime", "maxAllowedRunTime")
HOOKS = ("preRunHook", "postRunHook")
HOOK_KEYS = ("url", "method", "timeout", "retries", "headers")
PREVIOUS_KEYS = ("job", "args", "within", "wait")
LIMIT_KEYS = ("limit", "overlap", "queueLimit")
# Config field -> how it is typed: scalar (JSON-typed text), text (a string), lines (a
# list, one per line), env (KEY=value lines), map (group.name: quantity lines), headers.
CONFIG_KINDS = {
    "maxRetries": "scalar",
    "backoff": "scalar",
    "maxBackoff": "scalar",
    "job": "scalar",
    "args": "lines",
    "env": "env",
    "resources": "map",
    "integration": "text",
    "url": "text",
    "template": "template",
    "headers": "headers",
    "afterFailures": "scalar",
    "afterLastRetry": "bool",
    "realertEvery": "scalar",
    "recovery": "bool",
}
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "retry": ("maxRetries", "backoff", "maxBackoff"),
    "kickOffJob": ("job", "args", "env", "resources"),
    "webhook": (
        "integration",
        "url",
        "template",
        "headers",
        "afterFailures",
        "afterLastRetry",
        "realertEvery",
        "recovery",
    ),
    "killAllInstances": (),
    "killLatestInstance": (),
    "skipNextInstance": (),
}
assert set(ACTION_FIELDS) == set(ACTION_TYPES)
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
_ROW = re.compile(r"^actions\.([0-9]{1,6})\.(.+)$")


def show(value: Any) -> str:
    """A scalar as text that `read` turns back into the same JSON value."""
    if value is None:
        return ""
    if isinstance(value, str):
        special = value != value.strip() or not value or _NUMBER.match(value)
        if special or value in ("true", "false") or value.startswith(('"', "[", "{")):
            return json.dumps(value)
        return value
    return json.dumps(value)


def read(text: str) -> Any:
    """Typed text as a JSON scalar: numbers and true/false as such, "quoted" as a string."""
    t = text.strip()
    if not t:
        return None
    if _NUMBER.match(t):
        return int(t) if re.fullmatch(r"-?[0-9]+", t) else float(t)
    if t in ("true", "false"):
        return t == "true"
    if t.startswith(('"', "[", "{")):
        try:
            return json.loads(t)
        except ValueError:
            return t
    return t


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _show_kind(kind: str, value: Any) -> str:
    if kind in ("scalar", "bool"):
        return show(value)
    if kind in ("text", "template"):
        return value if isinstance(value, str) else show(value)
    if kind == "lines":
        return "\n".join(str(v) for v in value)
    if kind == "env":
        return "\n".join(f"{k}={v}" for k, v in value.items())
    if kind == "map":
        return "\n".join(f"{g}.{k}: {show(q)}" for g, d in value.items() for k, q in d.items())
    return "\n".join(f"{k}: {mask(v)}" for k, v in value.items())  # headers


def _put(out: dict[str, str], prefix: str, kind: str, present: bool, value: Any) -> None:
    if not present:
        return
    out[prefix] = _show_kind(kind, value)
    if kind in ("lines", "env", "map", "headers") and not value:
        out[f"{prefix}.set"] = "1"  # present but empty: [] or {} (not the same as absent)


def rows_of(job: JobSpec | None) -> dict[str, str]:
    """The flat form values of a job's constraints and actions."""
    out: dict[str, str] = {}
    if job is None:
        return out
    c = job.constraints
    if "catchUp" in c:
        out["constraints.catchUp"] = "1" if c["catchUp"] else "0"
    for key in DURATIONS:
        _put(out, f"constraints.{key}", "scalar", key in c, c.get(key))
    limit = c.get("maxConcurrentRuns")
    if isinstance(limit, dict):
        out["constraints.maxConcurrentRuns.shape"] = "object"
        for key in LIMIT_KEYS:
            kind = "text" if key == "overlap" else "scalar"
            name = field("constraints.maxConcurrentRuns", key)
            _put(out, name, kind, key in limit, limit.get(key))
    elif limit is not None:
        out["constraints.maxConcurrentRuns"] = show(limit)
    for name, keys in ((h, HOOK_KEYS) for h in HOOKS):
        _put_object(out, f"constraints.{name}", c.get(name), keys, "url")
    _put_object(
        out,
        "constraints.requirePreviousSuccess",
        c.get("requirePreviousSuccess"),
        PREVIOUS_KEYS,
        "job",
    )
    for i, action in enumerate(job.actions):
        out[f"actions.{i}.type"] = action.type
        out[f"actions.{i}.trigger"] = action.trigger
        out[f"actions.{i}.constraint"] = action.constraint or ""
        out[f"actions.{i}.from"] = str(i)  # which stored action's masked secrets it holds
        for key, value in action.config.items():
            _put(out, f"actions.{i}.config.{key}", CONFIG_KINDS.get(key, "scalar"), True, value)
    return out


_KINDS = {"url": "text", "method": "text", "headers": "headers", "args": "lines"}


def _put_object(
    out: dict[str, str], prefix: str, value: Any, keys: Iterable[str], short: str
) -> None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        out[f"{prefix}.shape"] = "short"
        _put(out, f"{prefix}.{short}", "scalar" if short == "job" else "text", True, value)
    elif isinstance(value, dict):
        for key in keys:
            _put(out, f"{prefix}.{key}", _KINDS.get(key, "scalar"), key in value, value.get(key))


class Reader:
    """Form text back into values, collecting errors for text that cannot be read."""

    def __init__(self, get: Get, names: list[str], stored: JobSpec | None) -> None:
        self.get = get
        self.names = names
        self.stored = stored
        self.errors: dict[str, str] = {}

    def value(self, name: str, kind: str) -> tuple[bool, Any]:
        """(present, value) of one field."""
        text = self.get(name).replace("\r\n", "\n")
        empty = self.get(f"{name}.set") == "1"
        if kind == "bool" or kind == "scalar":
            value = read(text)
            return value is not None, value
        if kind == "text":
            return bool(text.strip()), text.strip()
        if kind == "template":
            return bool(text.strip()), text
        if kind == "lines":
            lines = _lines(text)
            return bool(lines) or empty, lines
        pairs = self._pairs(name, text, "=" if kind == "env" else ":")
        if kind == "map":
            groups: dict[str, dict[str, Any]] = {}
            for key, qty in pairs.items():
                group, dot, sub = key.partition(".")
                if not dot:
                    self.errors[name] = f"{key!r}: write requests.cpu: 500m or limits.memory: 1Gi"
                groups.setdefault(group, {})[sub] = read(qty)
            pairs = groups
        elif kind == "headers":
            pairs = {k: self._secret(name, k, v) for k, v in pairs.items()}
        return bool(pairs) or empty, pairs

    def _pairs(self, name: str, text: str, sep: str) -> dict[str, Any]:
        out = {}
        for line in _lines(text):
            key, found, value = line.partition(sep)
            if not found or not key.strip():
                example = "KEY=value" if sep == "=" else "Name: value"
                self.errors[name] = f"{line[:40]!r} is not {example}"
            out[key.strip()] = value if sep == "=" else value.strip()
        return out

    def _secret(self, name: str, header: str, value: str) -> str:
        """A masked value sent back: the stored value it masks, from the same hook or the
        same stored action (`actions.N.from`, kept when rows are renumbered)."""
        if not value.startswith(MASK):
            return value
        stored = self._stored_headers(name).get(header)
        if stored is None or mask(stored) != value:
            self.errors[name] = f"{header}: type the value again (stored values are never shown)"
            return value
        return str(stored)

    def _stored_headers(self, name: str) -> dict[str, Any]:
        job, parts = self.stored, name.split(".")
        if job is None:
            return {}
        if parts[0] == "constraints":
            hook = job.constraints.get(parts[1])
            return (hook.get("headers") or {}) if isinstance(hook, dict) else {}
        origin = self.get(f"actions.{parts[1]}.from")
        if not origin.isdigit() or int(origin) >= len(job.actions):
            return {}
        return job.actions[int(origin)].config.get("headers") or {}

    def constraints(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        catch_up = self.get("constraints.catchUp")
        if catch_up in ("1", "0"):
            out["catchUp"] = catch_up == "1"
        for key in DURATIONS:
            present, value = self.value(f"constraints.{key}", "scalar")
            if present:
                out[key] = value
        limit = self._object("constraints.maxConcurrentRuns", LIMIT_KEYS, {"overlap": "text"})
        if limit is not None:
            simple = set(limit) == {"limit"} and not self.get("constraints.maxConcurrentRuns.shape")
            out["maxConcurrentRuns"] = limit["limit"] if simple else limit
        for name in HOOKS:
            hook = self._object(f"constraints.{name}", HOOK_KEYS, _KINDS, short="url")
            if hook is not None:
                out[name] = hook
        previous = self._object("constraints.requirePreviousSuccess", PREVIOUS_KEYS, _KINDS, "job")
        if previous is not None:
            out["requirePreviousSuccess"] = previous
        return out

    def _object(
        self, prefix: str, keys: Iterable[str], kinds: dict[str, str], short: str = ""
    ) -> Any:
        found = {}
        for key in keys:
            present, value = self.value(field(prefix, key), kinds.get(key, "scalar"))
            if present:
                found[key] = value
        if not found:
            return None
        if short and set(found) == {short} and self.get(f"{prefix}.shape") == "short":
            return found[short]
        return found

    def actions(self) -> list[dict[str, Any]]:
        out = []
        for i in row_indices(self.names):
            action: dict[str, Any] = {
                "type": self.get(f"actions.{i}.type"),
                "trigger": self.get(f"actions.{i}.trigger"),
                "config": {},
            }
            if self.get(f"actions.{i}.constraint"):
                action["constraint"] = self.get(f"actions.{i}.constraint")
            for key, kind in CONFIG_KINDS.items():
                present, value = self.value(f"actions.{i}.config.{key}", kind)
                if present:
                    action["config"][key] = value
            out.append(action)
        return out


def field(prefix: str, key: str) -> str:
    """A sub-field's form name; maxConcurrentRuns' limit is the constraint's own name."""
    return prefix if key == "limit" else f"{prefix}.{key}"


def row_indices(names: Iterable[str]) -> list[int]:
    """The action rows a form holds, in order (their `actions.N.type` fields)."""
    found = {int(m.group(1)) for m in map(_ROW.match, names) if m and m.group(2) == "type"}
    return sorted(found)


def resubmitted(form: Any, drop: int | None = None, add: str | None = None) -> dict[str, str]:
    """The rows as typed, to show again: row `drop` removed, a row of type `add` appended."""
    get = lambda name: (form.getunicode(name) or "").replace("\r\n", "\n")  # noqa: E731
    names = list(form.keys())
    out = {n: get(n) for n in names if n.startswith("constraints.")}
    rows = [i for i in row_indices(names) if i != drop]
    for new, old in enumerate(rows):
        for name in names:
            m = _ROW.match(name)
            if m and int(m.group(1)) == old:
                out[f"actions.{new}.{m.group(2)}"] = get(name)
    if add in ACTION_TYPES:
        out[f"actions.{len(rows)}.type"] = add
        out[f"actions.{len(rows)}.trigger"] = "on_failure"
        out["_focus"] = str(len(rows))  # the new row's type, where the keyboard goes on
    elif drop is not None:
        out["_focus"] = "new"  # the pressed Remove button is gone
    return out


def action_rows(values: dict[str, str]) -> list[tuple[int, str]]:
    """(index, type) of each action row, for the template."""
    return [(i, values[f"actions.{i}.type"]) for i in row_indices(values)]


def place(errors: dict[str, str]) -> dict[str, str]:
    """The validator's errors keyed by the form field that shows them.

    `actions[1].config` names the config key first in its reason ("url must be …"),
    `constraints.preRunHook` likewise ("timeout must be …"); both go beside that input.
    """
    out: dict[str, str] = {}
    for key, message in errors.items():
        m = re.match(r"^actions\[([0-9]+)\](?:\.(\w+))?$", key)
        first = re.match(r"^(\w+)", message)
        word = first.group(1) if first else ""
        if m:
            row, part = m.group(1), m.group(2)
            if "environment variable" in message:  # a kickOffJob env name (jobs._env)
                word = "env"
            word = {"requests": "resources", "limits": "resources"}.get(word, word)
            if part == "config" and word in CONFIG_KINDS:
                out[f"actions.{row}.config.{word}"] = message
            else:
                out[f"actions.{row}" + (f".{part}" if part else "")] = message
            continue
        name = key.removeprefix("constraints.")
        subs = {"maxConcurrentRuns": LIMIT_KEYS, "requirePreviousSuccess": PREVIOUS_KEYS}
        subs.update(dict.fromkeys(HOOKS, HOOK_KEYS))
        if key.startswith("constraints.") and name in subs:
            out[field(key, word if word in subs[name] else subs[name][0])] = message
        else:
            out[key] = message
    return out


def anchor(name: str) -> str:
    """The id of the input (or the row) an error's summary line links to."""
    row = re.match(r"^actions\.([0-9]+)(\.config)?$", name)
    if row or name == "actions":
        return f"f-actions-{row.group(1)}" if row else "actions"
    if name.startswith(("actions.", "constraints.")):
        return "f-" + name.replace(".", "-")
    return "f-" + name.split(".")[0].split("[")[0]


CHOICES = {
    "types": tuple(ACTION_TYPES),
    "triggers": [(t, t) for t in TRIGGERS],
    "constraints": [("", "None"), *((c, c) for c in CONSTRAINT_TYPES)],
}
