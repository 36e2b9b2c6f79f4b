"""One list-then-watch loop per namespace and resource kind (Jobs, Pods) with the managed-by label.

Design.md: "one watch per namespace ... never one watch per run". A
`ResourceWatch` runs in its own greenlet: LIST (which hands the whole current
state to `on_sync`, so the executor can notice what vanished while it was not
watching, with the `mark` taken just before the LIST was sent), then WATCH from
the list's resourceVersion, handing every event to `on_event` in order. It
keeps the last resourceVersion seen (bookmarks included), and:

- a stream closed by `timeoutSeconds` is re-watched at once from that version;
- `410 Gone`, in the stream (ERROR `Expired`) or as the HTTP answer, means the
  version is too old: relist, then watch again;
- a dropped connection or a 5xx/429 answer is retried with capped, jittered
  backoff, from the last version.

Lines are read with the official client's `iter_resp_lines` rather than
`watch.Watch`, because `Watch` either deserialises every object into models (too
slow for a thousand runs) or, undeserialised, cannot report ERROR events, and
its own 410 retry would hide the relist we need. Network waits are real time:
they are not policy, and the fake clock must not stall a socket.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from collections.abc import Callable
from typing import Any, cast

import gevent
import urllib3
from gevent.event import Event
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 290  # seconds the server keeps one watch open (the apiserver caps it near 30 min)
CONNECT_TIMEOUT = 10
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 10.0

ListFn = Callable[..., Any]
OnEvent = Callable[[str, dict[str, Any]], None]
OnSync = Callable[[list[dict[str, Any]], int], None]

_marks = itertools.count(1)


def mark() -> int:
    """The next number of one sequence shared by every LIST and its users (one hub).

    Whatever took a mark before a LIST was sent has a smaller one than that LIST: a
    run the executor announced after our LIST went out may be missing from its
    answer (the create and the LIST race on different greenlets), and must not be
    judged by it.
    """
    return next(_marks)


class Expired(Exception):
    """The resourceVersion we watch from is too old: relist."""


class ResourceWatch:
    """LIST+WATCH of one kind in one namespace, dispatching in a single greenlet."""

    def __init__(
        self,
        list_fn: ListFn,
        namespace: str,
        selector: str,
        on_event: OnEvent,
        on_sync: OnSync,
        *,
        timeout_seconds: int = WATCH_TIMEOUT,
    ) -> None:
        self.list_fn = list_fn
        self.namespace = namespace
        self.selector = selector
        self.on_event = on_event
        self.on_sync = on_sync
        self.timeout_seconds = timeout_seconds
        self.resource_version: str | None = None
        self.synced = Event()  # set once the first LIST has been handed over
        self.connections = 0  # watch requests made (reconnects included)
        self.relists = 0
        self.events = 0
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> ResourceWatch:
        self._greenlet = gevent.spawn(self.run)
        return self

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            try:
                if self.resource_version is None:
                    self.relist()
                self.watch_once()
                delay = BACKOFF_FIRST
            except Expired:
                self.resource_version = None
            except ApiException as exc:
                if exc.status == 410:
                    self.resource_version = None
                    continue
                log.warning("watch %s %s: API error %s", self.namespace, self.selector, exc.status)
                delay = self._backoff(delay, retry_after(exc))
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning("watch %s %s: connection lost: %s", self.namespace, self.selector, exc)
                delay = self._backoff(delay)

    def relist(self) -> None:
        listed = mark()
        resp = self.list_fn(
            self.namespace,
            label_selector=self.selector,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, 60),
        )
        data = json.loads(resp.data)
        self.relists += 1
        self.on_sync(data.get("items") or [], listed)
        self.resource_version = data["metadata"]["resourceVersion"]
        self.synced.set()

    def watch_once(self) -> None:
        self.connections += 1
        resp = self.list_fn(
            self.namespace,
            label_selector=self.selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.timeout_seconds,
            _preload_content=False,
            # Longer than timeoutSeconds, so only a dead connection trips it.
            _request_timeout=(CONNECT_TIMEOUT, self.timeout_seconds + 30),
        )
        try:
            for line in iter_resp_lines(resp):
                if line:
                    self._dispatch(json.loads(line))
        finally:
            resp.release_conn()

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Expired(obj.get("message"))
            raise ApiException(status=obj.get("code"), reason=obj.get("message"))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind != "BOOKMARK":
            self.events += 1
            self.on_event(cast(str, kind), obj)
        if version:
            self.resource_version = version

    def _backoff(self, delay: float, at_least: float = 0.0) -> float:
        gevent.sleep(max(at_least, delay * random.uniform(0.5, 1.0)))
        return min(BACKOFF_MAX, delay * 2)


def retry_after(exc: ApiException) -> float:
    """The seconds a 429/503 answer asked us to wait (0 when it did not say)."""
    try:
        return float((exc.headers or {}).get("Retry-After") or 0)
    except ValueError:
        return 0.0
