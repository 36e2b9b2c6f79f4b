"""A job's figures (statistics and charts) per window, cached briefly for its page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import gevent

from itinerary import jobpage, jobstats
from itinerary.briefcache import BriefCache
from itinerary.context import Context


class Figures:
    """Each job's statistics per window, and its charts per window and display zone,
    computed at most every `CACHE_S`.

    A job that runs every minute has 43,200 runs in 30 days; even from the roll-up
    (`itinerary/rollup.py`) its figures take tens of milliseconds, and every open page
    polls its tiles. Figures up to `CACHE_S` old are served (the page says when they
    were computed), concurrent views of the same key wait for one computation, and past
    half that age the next view starts their successor in the background
    (`itinerary/briefcache.py`), so views seldom wait for one. The
    statistics do not depend on the zone, so a new zone costs only its charts. The
    arithmetic runs in the hub's thread pool, so the gevent loop keeps turning.
    """

    CACHE_S = 10.0  # the tiles' poll period
    MAX_ENTRIES = 1000

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cache = BriefCache(self.CACHE_S, self.MAX_ENTRIES)

    def stats(self, job_id: int, window: str, now: datetime) -> tuple[datetime, dict]:
        """(when computed, `jobstats` figures)."""
        store = jobstats.rollup_store(self.ctx.queues.syncer, now)
        database = self.ctx.database
        return self._get(
            ("stats", job_id, window), now, jobstats.compute, database, job_id, window, now, store
        )

    def charts(self, job_id: int, window: str, now: datetime, zone: str) -> dict:
        return self._get(
            ("charts", job_id, window, zone), now, self._charts, job_id, window, now, zone
        )[1]

    def _charts(self, job_id: int, window: str, now: datetime, zone: str) -> dict:
        rows = self.ctx.database.read(jobpage.window_rows, job_id, window, now, zone)
        return gevent.get_hub().threadpool.apply(jobpage.build, (rows, window, now, zone))

    def _get(
        self, key: tuple[Any, ...], now: datetime, fn: Any, *args: Any
    ) -> tuple[datetime, dict]:
        def computed() -> tuple[datetime, dict]:
            return now, fn(*args)

        got: tuple[datetime, dict] = self.cache.get(key, now.timestamp(), computed)[1]
        return got
