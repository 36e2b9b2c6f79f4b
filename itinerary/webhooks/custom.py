"""Custom webhooks: the integration's (or the action's) template, rendered in the sandbox.

Without a template the body is the run's variables as JSON. With one, the
template gets the seed's variables (`cluster`, `jobName`, `jobNamespace`,
`jobCommand`, `jobArgs`, `runID`, `status`, `error`) plus `slot`, `attempt`,
`duration`, `runURL`, `event` and `kind`, and a `tojson` filter
(itinerary/templating.py). A template error becomes a `TemplateError` the handler
records on the delivery; it is never raised into anyone's path. With a secret
the request is signed (signing.py).
"""

from __future__ import annotations

import json

from itinerary import templating
from itinerary.webhooks import signing
from itinerary.webhooks.base import Event, Outgoing, verdict
from itinerary.webhooks.integrations import Integration


def variables(event: Event) -> dict:
    happened = event.variables.get("trigger") or event.trigger
    return {**event.variables, "event": happened, "kind": event.kind}


def render_body(template: str | None, event: Event) -> bytes:
    """The body: the template's output, or the variables as JSON; TemplateError on failure."""
    if template:
        return templating.render(template, variables(event)).encode()
    happened = event.variables.get("trigger") or event.trigger  # on_success for a recovery
    body = {"event": happened, "kind": event.kind, "runId": event.run_id}
    body.update({"jobId": event.job_id, **event.variables})
    return json.dumps(body, ensure_ascii=False, default=str).encode()


def build(
    integration: Integration,
    event: Event,
    template: str | None = None,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> Outgoing:
    """The request; `body`/`headers`: the action's own, rendered by the orchestrator."""
    c = integration.config
    raw = body.encode() if body is not None else render_body(template or c.get("template"), event)
    sent = {"Content-Type": "application/json", **(c.get("headers") or {}), **(headers or {})}
    if c.get("secret"):
        sent.update(signing.headers(c["secret"], event.key, int(event.at.timestamp()), raw))
    return Outgoing(c.get("method", "POST"), c["url"], sent, raw)


classify = verdict  # the generic rules: 2xx ok; 429, 5xx, no answer retried; 410 broken
