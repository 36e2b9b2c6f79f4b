"""Templates, security headers and content negotiation for the HTML pages.

One Jinja2 environment with autoescape on for every template (so a job
description, a tag or a run reason can never become markup), filters that turn
times into `<time datetime>` elements the browser reformats in the display zone,
and `html()`, which adds the headers every page carries: a Content-Security-
Policy without `unsafe-inline`/`unsafe-eval`, nosniff, same-origin referrers,
and `no-store` (pages show env values).
"""

from __future__ import annotations

import hashlib
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bottle
import jinja2
from markupsafe import Markup

from itinerary import guard

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def wants_html(request: bottle.BaseRequest) -> bool:
    """A browser (it prefers text/html), not an API client or a probe (guard.py's rule)."""
    return guard.wants_html(request.environ)


def _utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: Any) -> str:
    t = _utc(value)
    return "" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def time_tag(value: Any, empty: str = "–") -> Markup:
    """`<time>`: correct UTC text without JavaScript, reformatted by itinerary.js."""
    t = _utc(value)
    if t is None:
        return Markup(empty)
    return Markup('<time datetime="{0}" data-ts>{1} UTC</time>').format(
        t.strftime("%Y-%m-%dT%H:%M:%SZ"), t.strftime("%Y-%m-%d %H:%M:%S")
    )


def duration(seconds: float | None) -> str:
    """4 m 12 s, 2 h 5 m, 3 d 4 h."""
    if seconds is None:
        return "–"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} m"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _version(name: str) -> str:
    """A cache-busting suffix for an own static file: its content hash."""
    path = STATIC / name
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "0"


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["time"] = time_tag
ENV.filters["duration"] = duration
ENV.filters["iso"] = iso
ENV.filters["shell"] = shlex.join  # argv shown as a shell would read it back
ENV.globals["asset_version"] = {
    n: _version(n) for n in ("itinerary.css", "itinerary.js", "gantt.js", "charts.js")
}


def render(template: str, **values: Any) -> str:
    return ENV.get_template(template).render(**values)


def html(
    body: str, status: int = 200, headers: dict[str, str] | None = None
) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        body=body,
        status=status,
        headers={"Content-Type": "text/html; charset=utf-8", **PAGE_HEADERS, **(headers or {})},
    )
