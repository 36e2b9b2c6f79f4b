"""Answers kept a few seconds, computed once however many requests ask at the same time.

A page polled by many open tabs (the job list, the Gantt's data) costs tens of
milliseconds to compute; at 50 requests/s that is more than one process has. Within
`ttl_s` (clock seconds, so tests drive it with the fake clock) the same key gets the
same answer, and a key asked for while it is being computed waits for that computation
instead of starting another. Past half its life an answer is still served while one
greenlet computes its successor (unless `refresh` is off), so requests rarely wait for
a computation; none is ever served older than `ttl_s`. Callers put into the key
everything the answer depends on, including `jobcache.generation()` when a job change
must show at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

import gevent
from gevent.event import AsyncResult

log = logging.getLogger(__name__)


class BriefCache:
    def __init__(self, ttl_s: float, max_entries: int = 1000, refresh: bool = True) -> None:
        self.ttl_s = ttl_s
        self.refresh = refresh
        self.max_entries = max_entries
        self.entries: dict[Hashable, tuple[float, Any]] = {}
        self.pending: dict[Hashable, AsyncResult] = {}

    def get(self, key: Hashable, now_s: float, fn: Callable[..., Any], *args: Any) -> Any:
        """(when computed, fn(*args)): the cached pair if younger than `ttl_s`.

        `fn` may run in another greenlet: its arguments must not be request-local."""
        hit = self.entries.get(key)
        if hit is not None and 0 <= now_s - hit[0] < self.ttl_s:
            stale = self.refresh and now_s - hit[0] >= self.ttl_s / 2
            if stale and key not in self.pending:
                self.pending[key] = AsyncResult()
                gevent.spawn(self._refresh, key, now_s, fn, args)
            return hit
        waiting = self.pending.get(key)
        if waiting is not None:
            return waiting.get()
        self.pending[key] = AsyncResult()
        return self._compute(key, now_s, fn, args)

    def _compute(self, key: Hashable, now_s: float, fn: Callable[..., Any], args: Any) -> Any:
        result = self.pending[key]
        try:
            entry = (now_s, fn(*args))
        except BaseException as exc:
            result.set_exception(exc)
            raise
        finally:
            self.pending.pop(key, None)
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = entry
        result.set(entry)
        return entry

    def _refresh(self, key: Hashable, now_s: float, fn: Callable[..., Any], args: Any) -> None:
        """The successor of a half-aged answer; a failure is left to the next request."""
        try:
            self._compute(key, now_s, fn, args)
        except Exception:
            log.warning("refreshing a cached answer failed", exc_info=True)
