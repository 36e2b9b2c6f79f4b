"""Named integrations: their JSON shape, validation, and the secrets they hold.

An integration is configured once (`{"name", "type", "config"}`) and named by
jobs' webhook actions. Each type's config is checked here with one error per
bad field, so the API, the CLI and `apply -f` refuse the same things with the
same words. Secrets (Slack's webhook URL, PagerDuty's routing key, New Relic's
key, a custom signing secret and custom header values) are stored but never
shown again: `public()` masks them as `••••` plus the last 4 characters, and an
update that sends a masked value (or leaves it out) keeps the stored one, so a
read-modify-write round trip never destroys a secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from itinerary import templating
from itinerary.masking import MASK, mask

TYPES = ("slack", "pagerduty", "newrelic", "custom")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
NAME_MAX = 100
SEVERITIES = ("critical", "error", "warning", "info")
# Run states (and "violation") that can be mapped to a PagerDuty severity.
SEVERITY_STATES = ("failed", "lost", "killed", "violation", "test")
DEFAULT_SEVERITY = {
    "failed": "error",
    "lost": "critical",
    "killed": "warning",
    "violation": "warning",
    "test": "info",
}
EVENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_:]{1,255}$")
METHODS = ("POST", "PUT", "PATCH")
# Messages per second per integration (Slack: about 1/s per webhook; PagerDuty: 120/min).
DEFAULT_RATE = {"slack": 1.0, "pagerduty": 2.0, "newrelic": 0.0, "custom": 0.0}
KEYS = {
    "slack": ("url", "rateLimit"),
    "pagerduty": ("routingKey", "severity", "endpoint", "rateLimit"),
    "newrelic": ("accountId", "apiKey", "region", "eventType", "endpoint", "rateLimit"),
    "custom": ("url", "method", "headers", "template", "secret", "rateLimit"),
}
SECRETS = {"slack": ("url",), "pagerduty": ("routingKey",), "newrelic": ("apiKey",)}
SECRETS["custom"] = ("secret",)  # plus every header value
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class IntegrationError(ValueError):
    """Bad integration input; `fields` maps each bad field to the reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Integration:
    name: str
    type: str
    config: dict[str, Any]
    id: int | None = None
    broken_reason: str | None = None
    broken_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def rate_limit(self) -> float:
        return float(self.config.get("rateLimit", DEFAULT_RATE[self.type]))

    def secrets(self) -> list[str]:
        """Every secret value this integration holds (what must never be shown)."""
        out = [str(self.config[k]) for k in SECRETS[self.type] if self.config.get(k)]
        if self.type == "custom":
            out += [str(v) for v in (self.config.get("headers") or {}).values() if v]
        return out


def masked_url(url: str) -> str:
    """A custom URL as shown: credentials and query string (often a token) masked."""
    parts = urlsplit(url)
    if not parts.query and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = MASK + "@" if "@" in parts.netloc else ""
    query = "?" + MASK if parts.query else ""
    return f"{parts.scheme}://{user}{host}{parts.path}{query}"


def _is_masked(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MASK)


def public(integration: Integration) -> dict[str, Any]:
    """The API's view: secrets masked, broken state and last delivery shown."""
    config = dict(integration.config)
    for key in SECRETS[integration.type]:
        if config.get(key):
            config[key] = mask(config[key])
    if integration.type == "custom" and config.get("headers"):
        config["headers"] = {k: mask(v) for k, v in config["headers"].items()}
    if integration.type == "custom" and config.get("url"):
        config["url"] = masked_url(config["url"])
    return {
        "name": integration.name,
        "type": integration.type,
        "config": config,
        "broken": integration.broken_reason is not None,
        "brokenReason": integration.broken_reason,
        "brokenAt": _iso(integration.broken_at),
        "createdAt": _iso(integration.created_at),
        "updatedAt": _iso(integration.updated_at),
        **integration.extra,
    }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def expand_env(value: Any, env: dict[str, str] | None = None, path: str = "config") -> Any:
    """Replace `${NAME}` in every string with the environment's value (for `apply -f`)."""
    env = dict(os.environ) if env is None else env
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    missing = [m for m in ENV_REF.findall(value) if m not in env]
    if missing:
        raise IntegrationError({path: f"environment variable {missing[0]} is not set"})
    return ENV_REF.sub(lambda m: env[m.group(1)], value)


def parse(body: Any, base: Integration | None = None) -> Integration:
    """A valid Integration from the API/YAML shape, or IntegrationError naming each field.

    With `base` (an update), secrets left out or sent back masked keep their stored values.
    """
    if not isinstance(body, dict):
        raise IntegrationError({"body": 'must be {"name", "type", "config"}'})
    errors = {k: "unknown field" for k in sorted(set(body) - {"name", "type", "config"})}
    name = body.get("name", base.name if base else None)
    kind = body.get("type", base.type if base else None)
    config = body.get("config", {})
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > NAME_MAX:
        errors["name"] = (
            f"must be 1 to {NAME_MAX} lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    elif base is not None and name != base.name:
        errors["name"] = f"does not match the integration in the path ({base.name})"
    if kind not in TYPES:
        errors["type"] = f"must be one of {', '.join(TYPES)}"
    elif base is not None and kind != base.type:
        errors["type"] = f"cannot change type ({base.type}); delete and create it instead"
    if not isinstance(config, dict):
        errors["config"] = "must be an object"
    if "type" in errors or "config" in errors:
        raise IntegrationError(errors)
    config, kind = dict(config), cast(str, kind)
    if base is not None:
        config = _keep_secrets(kind, config, base.config)
    errors.update(_check(kind, config))
    if errors:
        raise IntegrationError(errors)
    return Integration(name=cast(str, name), type=kind, config=config)


def _keep_secrets(kind: str, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    for key in SECRETS[kind]:
        if (key not in new or _is_masked(new[key])) and key in old:
            new[key] = old[key]
    if kind == "custom" and isinstance(new.get("url"), str) and MASK in new["url"]:
        if "url" in old and masked_url(old["url"]) == new["url"]:
            new["url"] = old["url"]
    if kind == "custom" and isinstance(new.get("headers"), dict):
        stored = old.get("headers") or {}
        new["headers"] = {
            k: stored[k] if _is_masked(v) and k in stored else v for k, v in new["headers"].items()
        }
    return new


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "is required (an http or https URL)"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL"
    return None


def _check(kind: str, c: dict[str, Any]) -> dict[str, str]:
    errors = {f"config.{k}": "unknown field" for k in sorted(set(c) - set(KEYS[kind]))}

    def need(key: str, problem: str | None) -> None:
        if problem:
            errors[f"config.{key}"] = problem

    rate = c.get("rateLimit")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1000
    ):
        need("rateLimit", "must be messages per second from 0 (unlimited) to 1000")
    if "endpoint" in c:
        need("endpoint", _url(c["endpoint"]))
    if kind == "slack":
        need("url", _url(c.get("url")))
    elif kind == "pagerduty":
        key = c.get("routingKey")
        if not isinstance(key, str) or len(key) != 32:
            need("routingKey", "must be the 32-character integration (routing) key")
        need("severity", _severity(c.get("severity")))
    elif kind == "newrelic":
        account = c.get("accountId")
        if not (
            isinstance(account, int) and not isinstance(account, bool) and account > 0
        ) and not (isinstance(account, str) and account.isdigit()):
            need("accountId", "must be the numeric New Relic account id")
        if not isinstance(c.get("apiKey"), str) or not c.get("apiKey"):
            need("apiKey", "is required (a license or insert key)")
        if c.get("region", "US") not in ("US", "EU"):
            need("region", "must be US or EU")
        event_type = c.get("eventType", "ItineraryJobRun")
        if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
            need("eventType", "may hold only letters, digits, '_' and ':' (at most 255)")
        elif event_type.startswith(("Metric", "Public_")):
            need("eventType", "may not start with Metric or Public_ (reserved by New Relic)")
    else:
        need("url", _url(c.get("url")))
        if c.get("method", "POST") not in METHODS:
            need("method", f"must be one of {', '.join(METHODS)}")
        headers = c.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            need("headers", "must map header names to string values")
        if "template" in c:
            try:
                if not isinstance(c["template"], str):
                    raise templating.TemplateError("must be a string")
                templating.check(c["template"])
            except templating.TemplateError as exc:
                need("template", str(exc))
        secret = c.get("secret")
        if secret is not None and (not isinstance(secret, str) or len(secret) < 24):
            need("secret", "must be at least 24 characters (whsec_ plus base64, or raw text)")
    return errors


def _severity(value: Any) -> str | None:
    if value is None or value in SEVERITIES:
        return None
    if isinstance(value, dict):
        for state, sev in value.items():
            if state not in SEVERITY_STATES:
                return f"keys must be run states ({', '.join(SEVERITY_STATES)})"
            if sev not in SEVERITIES:
                return f"values must be one of {', '.join(SEVERITIES)}"
        return None
    return f"must be one of {', '.join(SEVERITIES)}, or a map from run state to one of them"


def severity_for(integration: Integration, state: str) -> str:
    chosen = integration.config.get("severity")
    if isinstance(chosen, str):
        return chosen
    mapping = {**DEFAULT_SEVERITY, **(chosen or {})}
    return mapping.get(state, "error")


def with_broken(integration: Integration, reason: str | None, at: datetime | None) -> Integration:
    return replace(integration, broken_reason=reason, broken_at=at if reason else None)
