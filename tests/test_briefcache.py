"""The short-lived, single-flight answer cache behind the job list and the Gantt's data."""

from __future__ import annotations

import gevent
from gevent.event import Event

from itinerary.briefcache import BriefCache


def test_it_computes_once_for_requests_that_ask_at_the_same_time() -> None:
    cache, calls, gate = BriefCache(5.0), [], Event()

    def slow(n: int) -> int:
        calls.append(n)
        gate.wait()
        return n

    asks = [gevent.spawn(cache.get, "k", 100.0, slow, i) for i in range(3)]
    gevent.sleep(0)
    gate.set()
    assert [g.get() for g in asks] == [(100.0, 0)] * 3 and calls == [0]


def test_it_serves_a_half_aged_answer_while_refreshing_and_never_an_expired_one() -> None:
    cache, values = BriefCache(4.0), iter(["a", "b", "c"])
    assert cache.get("k", 0.0, lambda: next(values)) == (0.0, "a")
    assert cache.get("k", 1.0, lambda: next(values)) == (0.0, "a")  # fresh: no refresh
    assert cache.get("k", 2.5, lambda: next(values)) == (0.0, "a")  # refresh started
    gevent.sleep(0)
    assert cache.get("k", 3.0, lambda: next(values)) == (2.5, "b")
    assert cache.get("k", 7.0, lambda: next(values)) == (7.0, "c")  # expired: waits
