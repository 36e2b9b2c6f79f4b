"""Host and Origin checks in front of every route: DNS rebinding and cross-site writes.

On loopback the API needs no token, so any web page the user visits could drive
it from their browser: a DNS-rebinding page resolves its own name to 127.0.0.1
after loading, and its requests are then same-origin for the browser (CORS does
not apply, and a JSON body passes the API's 415 on form bodies). Two checks
close that, for the API, the UI and `/metrics` alike (`/healthz` and `/readyz`
stay open, for probes that send a pod's IP or no useful Host):

- **Host**: a request must name this server. IP literals and `localhost` are
  always accepted, since no DNS answer can rebind them (the browser's origin is
  then that address itself); any other name must be in `--allowed-hosts`, which
  is required when listening off loopback (`*` accepts any Host, explicitly).
  Anything else is a 400, logged at most once a minute per host. A request
  without Host (HTTP/1.0) cannot come from a browser and passes.
- **Origin**: a write (POST, PUT, PATCH, DELETE) that carries an `Origin`
  other than the server's own, or `Sec-Fetch-Site` other than `same-origin`
  or `none`, is a 403 with a token or without: it comes from another page.
  Non-browser clients (curl, `apply --server`) send neither and pass.

The web UI's forms rely on the same middleware and add a CSRF token of their own.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
LOG_EVERY_S = 60.0
MAX_REMEMBERED_HOSTS = 1000

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """`--allowed-hosts` as lower-case entries: names, `*.suffix` wildcards, or `*`.

    Raises ValueError naming the first entry that is not a bare host name.
    """
    entries = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            if text.strip():
                raise ValueError("an empty entry (two commas, or a trailing comma)")
            continue
        name = entry[2:] if entry.startswith("*.") else entry
        if entry != "*" and not _is_host_name(name):
            raise ValueError(
                f"{raw.strip()!r} is not a host name (write names like itinerary.example.com "
                "or *.example.com, without scheme, port or path, or * for any host)"
            )
        entries.append(entry)
    return tuple(entries)


def _is_host_name(name: str) -> bool:
    if _is_ip(name):
        return True
    labels = name.split(".")
    return all(
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def host_name(header: str) -> str:
    """The name in a Host header, without its port, lower-cased (IPv6 keeps its brackets)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Whether the Host `name` (no port) may reach this server."""
    if not name:
        return False
    if name == "localhost" or _is_ip(name) or "*" in allowed:
        return True
    for entry in allowed:
        if entry == name or (entry.startswith("*.") and name.endswith(entry[1:])):
            return True
    return False


def foreign_origin(environ: dict[str, Any]) -> str | None:
    """Why a write comes from another page, or None when it may be our own (or no browser's)."""
    site = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if site and site not in SAFE_FETCH_SITES:
        return f"Sec-Fetch-Site: {site}"
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return None
    own = environ.get("HTTP_HOST", "").strip().lower()
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or parts.netloc != own or not own:
        return f"Origin {origin[:100]!r} is not this server ({own or 'no Host'})"
    return None


def wants_html(environ: dict[str, Any]) -> bool:
    """Whether the client prefers HTML (a browser) to JSON, by its Accept header."""
    accept = environ.get("HTTP_ACCEPT", "")
    html_at = accept.find("text/html")
    json_at = accept.find("application/json")
    return html_at >= 0 and (json_at < 0 or html_at < json_at)


def refuse(
    environ: dict[str, Any], start_response: Callable[..., Any], status: int, code: str, msg: str
) -> list[bytes]:
    """An error answer in the client's language: a small HTML page or the API's JSON shape."""
    reason = {400: "Bad Request", 403: "Forbidden"}.get(status, "Error")
    if wants_html(environ):
        text = html.escape(msg)
        body = (
            f"<!doctype html><html lang=en><meta charset=utf-8><title>{status} {reason}</title>"
            f"<h1>{status} {reason}</h1><p>{text}</p></html>"
        ).encode()
        content_type = "text/html; charset=utf-8"
    else:
        body = json.dumps({"error": {"code": code, "message": msg}}).encode()
        content_type = "application/json"
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


class Guard:
    """WSGI middleware applying the Host and Origin checks before `app` sees a request."""

    def __init__(
        self,
        app: WSGIApp,
        allowed: tuple[str, ...],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.monotonic = monotonic
        self._logged: dict[str, float] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "") in OPEN_PATHS:
            return self.app(environ, start_response)
        header = environ.get("HTTP_HOST")  # absent only from HTTP/1.0 clients, never a browser
        name = host_name(header or "")
        if header is not None and not host_allowed(name, self.allowed):
            self._log_once(name, environ)
            msg = (
                f"Host {name or '(none)'!r} is not served here; list it in --allowed-hosts "
                "if this server is reached by that name"
            )
            return refuse(environ, start_response, 400, "bad_host", msg)
        if environ.get("REQUEST_METHOD", "GET").upper() in WRITE_METHODS:
            why = foreign_origin(environ)
            if why is not None:
                msg = f"cross-site write refused: {why}"
                return refuse(environ, start_response, 403, "cross_site", msg)
        return self.app(environ, start_response)

    def _log_once(self, name: str, environ: dict[str, Any]) -> None:
        now = self.monotonic()
        last = self._logged.get(name)
        if last is not None and now - last < LOG_EVERY_S:
            return
        if len(self._logged) >= MAX_REMEMBERED_HOSTS:  # a flood of names cannot grow memory
            self._logged.clear()
        self._logged[name] = now
        log.warning(
            "refused a request for Host %r from %s (%s %s): not in --allowed-hosts",
            name[:100],
            environ.get("REMOTE_ADDR", "?"),
            environ.get("REQUEST_METHOD", "?"),
            environ.get("PATH_INFO", "")[:200],
        )
