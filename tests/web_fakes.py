"""A browser-like client for the web UI's route tests, on the API harness (tests/api_fakes.py).

It sends `Accept: text/html`, keeps cookies, and reads the CSRF token from the
last page it fetched, as a browser's form would.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import gevent
from werkzeug.test import Client

from itinerary.clock import settle
from itinerary.web import reads
from tests.api_fakes import Api

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class Browser:
    def __init__(self, api: Api) -> None:
        reads.clear_caches()  # a new database behind this process (caches are per process)
        self.api = api
        self.client = Client(api.client.application)
        self.csrf = ""

    def open(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Accept": "text/html", **kw.pop("headers", {})}
        with gevent.Timeout(10):
            resp = self.client.open(path, method=method, headers=headers, **kw)
        settle()
        found = CSRF_RE.search(resp.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return resp

    def get(self, path: str, **kw: Any) -> Any:
        return self.open("GET", path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        """A form post carrying the CSRF token (unless `data` sets `_csrf` itself)."""
        if not self.csrf:
            self.get("/running")
        return self.open("POST", path, data={"_csrf": self.csrf, **(data or {})}, **kw)

    def text(self, path: str) -> str:
        resp = self.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        return resp.get_data(as_text=True)


JOB_FORM = {
    "name": "backup",
    "description": "Nightly backup",
    "tags": "nightly, db",
    "enabled": "1",
    "schedule": "30 2 * * *",
    "timezone": "Europe/Paris",
    "namespace": "default",
    "commands": "sh -c 'echo backing up'",
    "constraints.maxConcurrentRuns": "1",
    "constraints.maxAllowedRunTime": "1h",
    "manuallyRunnable": "1",
    "modifiable.args": "1",
}


class _FormReader(HTMLParser):
    """What a browser would submit from the form posting to `action`, unchanged."""

    def __init__(self, action: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action = action
        self.inside = False
        self.fields: dict[str, str] = {}
        self.textarea: str | None = None
        self.select: str | None = None
        self.option: tuple[str | None, bool, str] | None = None  # value, selected, text
        self.chosen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        elif self.inside and tag == "input" and "name" in a:
            kind = a.get("type", "text")
            if kind not in ("checkbox", "radio") or "checked" in a:
                self.fields[a["name"]] = a.get("value", "")
        elif self.inside and tag == "textarea":
            self.textarea = a["name"]
            self.fields[self.textarea] = ""
        elif self.inside and tag == "select" and "name" in a:
            self.select = a["name"]
        elif self.select is not None and tag == "option":
            self.option = (dict(attrs).get("value"), "selected" in a, "")

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.fields[self.textarea] += data
        if self.option is not None:
            self.option = (self.option[0], self.option[1], self.option[2] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self.textarea = None
        elif tag == "option" and self.option is not None and self.select is not None:
            value, selected, text = self.option
            value = text.strip() if value is None else value
            if selected or self.select not in self.fields:  # else the first option
                if self.select not in self.chosen:
                    self.fields[self.select] = value
                if selected:
                    self.chosen.add(self.select)
            self.option = None
        elif tag == "select":
            self.select = None
        elif tag == "form":
            self.inside = False


def form_fields(html: str, action: str) -> dict[str, str]:
    reader = _FormReader(action)
    reader.feed(html)
    # A browser drops the newline that follows <textarea> (HTML parsing rules).
    return {k: v[1:] if v.startswith("\n") else v for k, v in reader.fields.items()}
