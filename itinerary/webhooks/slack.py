"""Slack incoming webhooks: a text fallback plus blocks and a coloured attachment.

Text is mrkdwn, so `&`, `<` and `>` in anything a job controls (its name, its
error) are escaped per Slack's rules; the run page link (`--public-url`) is the
only `<url|label>` we write ourselves. Slack answers a plain-text `ok`; its
errors are plain text too, and the ones meaning the webhook is gone or forbidden
(`no_service`, `channel_is_archived`, `invalid_token`, ...) mark it broken.
"""

from __future__ import annotations

import json

from itinerary.webhooks.base import Event, Outgoing, Verdict, excerpt, human_duration, verdict
from itinerary.webhooks.integrations import Integration

COLOURS = {
    "failed": "#d50000",
    "lost": "#d50000",
    "killed": "#ff9100",
    "violation": "#ffab00",
    "succeeded": "#2e7d32",
    "test": "#1565c0",
}
SECTION_MAX = 3000
ERROR_EXCERPT = 500
# Answers meaning the webhook cannot work until someone fixes it (protocols.md B1).
PERMANENT = (
    "no_service",
    "channel_is_archived",
    "invalid_token",
    "channel_not_found",
    "action_prohibited",
    "no_team",
    "team_disabled",
    "posting_to_general_channel_denied",
)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(event: Event) -> str:
    name = escape(event.job_name)
    if event.kind == "test":
        return "Itinerary test message: this integration works."
    if event.kind == "recovery":
        return f":white_check_mark: Job *{name}* recovered: run succeeded"
    if event.trigger == "on_violation":
        return f":warning: Job *{name}* violated a constraint"
    return f":x: Job *{name}* {escape(event.state)}"


def build(integration: Integration, event: Event) -> Outgoing:
    v = event.variables
    title = headline(event)
    facts = [
        f"*State:* {escape(event.state)}",
        f"*Slot:* {escape(str(v.get('slot') or '-'))}",
        f"*Duration:* {human_duration(v.get('duration'))}",
        f"*Attempt:* {v.get('attempt') or 1}",
    ]
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": excerpt(title, SECTION_MAX)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
    ]
    error = v.get("error")
    if error and event.kind != "recovery":
        text = "```" + escape(excerpt(error, ERROR_EXCERPT)) + "```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    url = v.get("runURL")
    if url:
        link = f"<{url}|Open run {escape(str(event.run_id))}>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
    fallback = f"{title} (run {event.run_id or '-'})"
    body = {
        "text": fallback,
        "blocks": blocks,
        "attachments": [
            {"color": COLOURS.get(event.state, "#757575"), "fallback": fallback, "text": title}
        ],
    }
    return Outgoing(
        "POST",
        integration.config["url"],
        {"Content-Type": "application/json"},
        json.dumps(body, ensure_ascii=False).encode(),
    )


def classify(status: int | None, body: str, retry_after: float | None) -> Verdict:
    answer = body.strip()
    if status is not None and 400 <= status < 500 and answer in PERMANENT:
        return Verdict(False, broken=f"Slack answered {status} {answer}")
    return verdict(status, body, retry_after)
