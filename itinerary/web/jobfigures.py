"""A job's figures (statistics and charts) per window, cached briefly for its page."""

from __future__ import annotations

from datetime import datetime

import gevent
from gevent.event import AsyncResult

from itinerary import jobpage, jobstats
from itinerary.context import Context


class Figures:
    """Each job's statistics and charts per window, computed at most every `CACHE_S`.

    A job that runs every minute has 43,200 runs in 30 days; even from the roll-up
    (`itinerary/rollup.py`) its figures take tens of milliseconds, and every open page
    polls its tiles. Figures up to `CACHE_S` old are served (the page says when they
    were computed), and
    concurrent views of the same job and window wait for one computation. The charts'
    arithmetic runs in the hub's thread pool, so the gevent loop keeps turning.
    """

    CACHE_S = 10.0  # the tiles' poll period
    MAX_ENTRIES = 1000

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cache: dict[tuple[int, str, str], tuple[datetime, dict, dict]] = {}
        self.pending: dict[tuple[int, str, str], AsyncResult] = {}

    def get(
        self, job_id: int, window: str, now: datetime, zone: str = "UTC"
    ) -> tuple[datetime, dict, dict]:
        key = (job_id, window, zone)
        hit = self.cache.get(key)
        if hit is not None and 0 <= (now - hit[0]).total_seconds() < self.CACHE_S:
            return hit
        waiting = self.pending.get(key)
        if waiting is not None:
            return waiting.get()
        result = AsyncResult()
        self.pending[key] = result
        try:
            database = self.ctx.database
            store = jobstats.rollup_store(self.ctx.queues.syncer, now)
            stats = jobstats.compute(database, job_id, window, now, store)
            rows = database.read(jobpage.window_rows, job_id, window, now, zone)
            charts = gevent.get_hub().threadpool.apply(jobpage.build, (rows, window, now, zone))
        except BaseException as exc:
            result.set_exception(exc)
            raise
        finally:
            self.pending.pop(key, None)
        if len(self.cache) >= self.MAX_ENTRIES:
            self.cache.clear()
        self.cache[key] = (now, stats, charts)
        result.set(self.cache[key])
        return self.cache[key]
