"""Loopback HTTP receivers that answer as Slack, PagerDuty, New Relic or a custom endpoint.

Each records every request (method, path, headers, raw body) and answers with the
next scripted reply, else with the service's own success answer; the bodies and
errors are those of protocols.md part B.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest
from gevent.pywsgi import WSGIServer

SUCCESS = {
    "slack": (200, {"Content-Type": "text/plain"}, b"ok"),
    "pagerduty": (
        202,
        {"Content-Type": "application/json"},
        b'{"status":"success","message":"Event processed","dedup_key":"k"}',
    ),
    "newrelic": (200, {"Content-Type": "application/json"}, b'{"success":true,"uuid":"u-1"}'),
    "custom": (200, {"Content-Type": "text/plain"}, b"thanks"),
}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> bytes:
        if self.headers.get("content-encoding") == "gzip":
            return gzip.decompress(self.raw)
        return self.raw

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    service: str
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0

    def answer(self, status: int, body: bytes | str = b"", **headers: str) -> None:
        raw = body.encode() if isinstance(body, str) else body
        self.script.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, raw))

    def wait_for(self, count: int, clock: Any = None, timeout: float = 5.0) -> list[Seen]:
        with gevent.Timeout(timeout):
            while len(self.seen) < count:
                if clock is not None:
                    clock.advance(1)
                gevent.sleep(0.01)
        return self.seen


def serve(service: str) -> Iterator[Receiver]:
    server: WSGIServer
    receiver = Receiver("", service)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        raw = environ["wsgi.input"].read()
        path = environ["PATH_INFO"] + (
            "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""
        )
        receiver.seen.append(Seen(environ["REQUEST_METHOD"], path, headers, raw))
        if receiver.delay:
            gevent.sleep(receiver.delay)
        status, extra, body = receiver.script.pop(0) if receiver.script else SUCCESS[service]
        start_response(f"{status} X", [("Content-Length", str(len(body))), *extra.items()])
        return [body]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield receiver
    finally:
        server.stop(timeout=1)


@pytest.fixture
def slack_rx() -> Iterator[Receiver]:
    yield from serve("slack")


@pytest.fixture
def pagerduty_rx() -> Iterator[Receiver]:
    yield from serve("pagerduty")


@pytest.fixture
def newrelic_rx() -> Iterator[Receiver]:
    yield from serve("newrelic")


@pytest.fixture
def custom_rx() -> Iterator[Receiver]:
    yield from serve("custom")
