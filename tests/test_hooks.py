"""The hook call itself: it waits on its socket without blocking the hub, and keeps no secret."""

from __future__ import annotations

import time
from collections.abc import Iterator

import gevent
import pytest

from itinerary.orchestrator import hooks
from tests.runkit import Endpoint


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.stop()


def test_it_lets_the_hub_run_other_greenlets_while_a_hook_answers_slowly(endpoint) -> None:
    endpoint.default = (200, "ok", 0.5)
    ticks: list[float] = []

    def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            gevent.sleep(0.01)

    other = gevent.spawn(ticker)
    result = hooks.call({"url": endpoint.url}, {"runId": "r1"}, lambda s: True)
    other.kill()
    assert result.ok and result.status == 200
    # It should have left the hub free: the ticker kept ticking, never held up for the
    # half second the hook took (a loaded machine may hold it up a little).
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) >= 10 and max(gaps) < 0.3


def test_it_keeps_neither_the_headers_nor_the_query_string(endpoint) -> None:
    endpoint.default = (401, "bad token", 0.0)
    config = {"url": endpoint.url + "?token=s3cret", "headers": {"Authorization": "Bearer s3cret"}}
    result = hooks.call(config, {"runId": "r1"}, lambda s: True)
    assert endpoint.seen[0]["headers"]["authorization"] == "Bearer s3cret"
    assert "s3cret" not in str(result.details(config["url"])) + result.reason("preRunHook")


def test_it_stops_retrying_when_the_run_is_told_to_stop(endpoint) -> None:
    endpoint.default = (503, "busy", 0.0)
    result = hooks.call({"url": endpoint.url, "retries": 5}, {}, lambda s: False)
    assert (result.status, result.attempts, len(endpoint.seen)) == (503, 1, 1)
