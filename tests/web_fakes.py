"""A browser-like client for the web UI's route tests, on the API harness (tests/api_fakes.py).

It sends `Accept: text/html`, keeps cookies, and reads the CSRF token from the
last page it fetched, as a browser's form would.
"""

from __future__ import annotations

import re
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
