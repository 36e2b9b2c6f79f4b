"""Settings → Integrations (admin): the list, create/edit forms per type, delete, send test.

The forms turn into the API's JSON shape and go through the same validation
(`integrations.parse`) and writes (`webhooks/admin.py`) as `/api/v1/integrations`,
so a page can never store what the API refuses. A secret is never put back
into a page: its field is empty with the masked value as a hint, and an empty
secret field keeps the stored one (as the API keeps a masked value). A form
that does not validate answers 422 with each error beside its field, nothing
saved. "Send test" answers an htmx fragment with the service's reply.
"""

from __future__ import annotations

from typing import Any

import bottle

from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.web.pipeline import Req, page, see_other
from itinerary.webhooks import admin, store
from itinerary.webhooks.integrations import (
    KEYS,
    MASK,
    METHODS,
    SECRETS,
    SEVERITIES,
    SEVERITY_STATES,
    TYPES,
    Integration,
    IntegrationError,
    masked_url,
    parse,
    public,
)

BASE = "/settings/integrations"
LABELS = {"slack": "Slack", "pagerduty": "PagerDuty", "newrelic": "New Relic", "custom": "Custom"}
# Fields shown as text inputs (the rest: selects, textareas, secrets), in form order.
PLAIN = {
    "slack": (),
    "pagerduty": ("endpoint",),
    "newrelic": ("accountId", "eventType", "endpoint"),
    "custom": ("url",),
}


def _lines_to_headers(text: str) -> tuple[dict[str, str], str | None]:
    headers: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return headers, f"line {n}: expected 'Name: value'"
        headers[name.strip()] = value.strip()
    return headers, None


def to_body(form: Any, kind: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's `{"name", "type", "config"}` from a form; errors the form alone can see."""
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    keys = KEYS.get(kind, ())

    def text(key: str) -> str:
        return (form.getunicode(f"config.{key}") or "").strip()

    for key in keys:
        if key in ("severity", "headers", "rateLimit"):
            continue
        value = text(key)
        if key == "template" and value:  # kept as typed (whitespace may matter in a body)
            value = form.getunicode("config.template") or ""
        if value:  # an empty secret keeps the stored one; an empty option is the default
            config[key] = int(value) if key == "accountId" and value.isdigit() else value
    if "severity" in keys:
        mapping = {s: form.get(f"config.severity.{s}") for s in SEVERITY_STATES}
        chosen = {s: v for s, v in mapping.items() if v}
        if chosen:
            config["severity"] = chosen
    if "headers" in keys and text("headers"):
        config["headers"], problem = _lines_to_headers(form.getunicode("config.headers") or "")
        if problem:
            errors["config.headers"] = problem
    if text("rateLimit"):
        try:
            rate = float(text("rateLimit"))
            config["rateLimit"] = int(rate) if rate.is_integer() else rate
        except ValueError:
            errors["config.rateLimit"] = "must be a number of messages per second"
    return {"name": name, "type": kind, "config": config}, errors


def values_of(integration: Integration | None, kind: str) -> dict[str, Any]:
    """What the form shows: stored values with every secret left out (masked as a hint)."""
    values: dict[str, Any] = {"name": "", "severity": {}, "headers": "", "masked": {}}
    if integration is None:
        return values
    config = public(integration)["config"]
    values["name"] = integration.name
    for key, value in config.items():
        if key in SECRETS[kind]:
            values["masked"][key] = value
        elif key == "severity":
            chosen = value if isinstance(value, dict) else dict.fromkeys(SEVERITY_STATES, value)
            values["severity"] = chosen
        elif key == "headers":
            values["headers"] = "\n".join(f"{k}: {v}" for k, v in value.items())
        else:
            values[key] = "" if value is None else str(value)
    return values


def form_values(form: Any, kind: str, integration: Integration | None) -> dict[str, Any]:
    """What was typed, for a 422, minus the secrets (never echoed; still masked if stored).

    Custom header values are secrets too: the stored (masked) headers are shown again, and
    a typed custom URL only if it holds nothing `masked_url` would hide.
    """
    values = values_of(integration, kind)
    values["name"] = form.getunicode("name") or values["name"]
    for key in KEYS[kind]:
        if key in SECRETS[kind] or key in ("severity", "headers"):
            continue
        typed = form.getunicode(f"config.{key}") or ""
        if kind == "custom" and key == "url" and masked_url(typed) != typed:
            continue
        values[key] = typed
    values["severity"] = {s: form.get(f"config.severity.{s}") or "" for s in SEVERITY_STATES}
    return values


def _kind_of(req: Req) -> str:
    kind = req.request.query.get("type") or req.request.forms.get("type") or "slack"
    if kind not in TYPES:
        raise ApiError(400, f"type: must be one of {', '.join(TYPES)}")
    return kind


def _form_page(
    req: Req,
    integration: Integration | None,
    kind: str,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> bottle.HTTPResponse:
    return req.render(
        "settings/integration_form.html",
        status=status,
        integration=integration,
        kind=kind,
        v=values,
        errors=errors or {},
        keys=KEYS[kind],
        plain=PLAIN[kind],
        secrets=SECRETS[kind],
        types=TYPES,
        labels=LABELS,
        methods=METHODS,
        severities=SEVERITIES,
        severity_states=SEVERITY_STATES,
        mask=MASK,
        base=BASE,
    )


def _list_page(req: Req, status: int = 200, **extra: Any) -> bottle.HTTPResponse:
    found = req.ctx.database.read(store.load_all)
    rows = [admin.shown(req.ctx, i) for i in found]
    return req.render(
        "settings/integrations.html", status=status, rows=rows, labels=LABELS, base=BASE, **extra
    )


def _save(req: Req, current: Integration | None) -> bottle.HTTPResponse:
    form = req.request.forms
    kind = current.type if current else _kind_of(req)
    name = current.name if current else (form.getunicode("name") or "").strip()
    body, errors = to_body(form, kind, name)
    integration = None
    try:
        integration = parse(body, current)
    except IntegrationError as exc:
        errors = {**exc.fields, **errors}
    if errors or integration is None:
        return _form_page(req, current, kind, form_values(form, kind, current), errors, 422)
    try:
        stored = admin.save(req.ctx, integration, current is None, req.now)
    except ApiError as exc:  # a taken name
        if exc.status != 409:
            raise
        values = form_values(form, kind, current)
        return _form_page(req, current, kind, values, {"name": exc.message}, 409)
    verb = "created" if current is None else "saved"
    return see_other(BASE, f"Integration {stored.name} {verb}.")


def install(root: bottle.Bottle, ctx: Context) -> None:
    @root.get(BASE)
    @page(ctx, "admin")
    def integration_list(req: Req) -> Any:
        return _list_page(req)

    @root.get(BASE + "/new")
    @page(ctx, "admin")
    def new_form(req: Req) -> Any:
        kind = _kind_of(req)
        return _form_page(req, None, kind, values_of(None, kind))

    @root.post(BASE)
    @page(ctx, "admin", write=True)
    def create(req: Req) -> Any:
        return _save(req, None)

    @root.get(BASE + "/<name>/edit")
    @page(ctx, "admin")
    def edit_form(req: Req, name: str) -> Any:
        current = admin.load(ctx, name)
        return _form_page(req, current, current.type, values_of(current, current.type))

    @root.post(BASE + "/<name>")
    @page(ctx, "admin", write=True)
    def update(req: Req, name: str) -> Any:
        return _save(req, admin.load(ctx, name))

    @root.post(BASE + "/<name>/delete")
    @page(ctx, "admin", write=True)
    def delete(req: Req, name: str) -> Any:
        current = admin.load(ctx, name)
        try:
            admin.delete(ctx, current.name, req.now)
        except ApiError as exc:
            if exc.status != 409:
                raise
            users = ctx.database.read(store.used_by, current.name)
            refused = {"name": current.name, "jobs": users, "message": exc.message}
            return _list_page(req, 409, refused=refused)
        return see_other(BASE, f"Integration {current.name} deleted.")

    @root.post(BASE + "/<name>/test")
    @page(ctx, "admin", write=True)
    def send_test(req: Req, name: str) -> Any:
        current = admin.load(ctx, name)
        answer = admin.send_test(ctx, current, req.now)
        if req.htmx:
            return req.render("settings/_test_result.html", answer=answer, name=current.name)
        return _list_page(req, tested={"name": current.name, "answer": answer})
