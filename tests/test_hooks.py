"""The hook call itself (it waits on its socket without blocking the hub, keeps no secret,
keeps its connection) and where a cohort calls it: after starting the runs without hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import gevent
import pytest

from itinerary import config as configmod
from itinerary.clock import settle
from itinerary.jobs import JobSpec
from itinerary.orchestrator import Cohort, Orchestrator, Slot, hooks
from tests.fakes import FakeExecutor, FakeSyncer
from tests.runkit import Endpoint


class PortEndpoint(Endpoint):
    """The loopback endpoint, noting the client's port: a kept connection keeps its port."""

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        answer = super()._app(environ, start_response)
        self.seen[-1]["port"] = environ["REMOTE_PORT"]
        return answer


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = PortEndpoint()
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


def test_it_keeps_the_connection_for_the_next_call_to_the_same_host(endpoint) -> None:
    for run_id in ("r1", "r2"):
        assert hooks.call({"url": endpoint.url}, {"runId": run_id}, lambda s: True).ok
    first, second = endpoint.seen
    assert first["port"] == second["port"] and second["json"] == {"runId": "r2"}


def test_it_lets_a_long_answer_go_after_500_bytes_and_connects_anew(endpoint) -> None:
    endpoint.script = [(403, "x" * 100_000, 0.0)]
    refused = hooks.call({"url": endpoint.url}, {}, lambda s: True)
    assert (refused.status, refused.excerpt) == (403, "x" * 500)
    assert hooks.call({"url": endpoint.url}, {}, lambda s: True).ok
    assert endpoint.seen[0]["port"] != endpoint.seen[1]["port"]


def test_it_sends_a_get_hook_the_context_after_the_urls_own_query(endpoint) -> None:
    config = {"url": endpoint.url + "?team=a", "method": "GET"}
    assert hooks.call(config, {"runId": "r1", "args": ["x", "y"]}, lambda s: True).ok
    (seen,) = endpoint.seen
    assert (seen["method"], seen["query"]) == ("GET", "team=a&runId=r1&args=x%2Cy")


def test_it_lets_connections_beyond_the_pool_go_without_a_warning(endpoint, caplog) -> None:
    endpoint.default = (200, "ok", 0.05)
    config = {"url": endpoint.url}
    hooks.call(config, {}, lambda s: True)  # the host's pool exists: make it keep only one
    hooks._pool.connection_from_url(endpoint.url).pool.maxsize = 1
    with caplog.at_level(logging.WARNING):
        calls = [gevent.spawn(hooks.call, config, {}, lambda s: True) for _ in range(4)]
        gevent.joinall(calls, timeout=10)
    assert all(c.value.ok for c in calls) and caplog.records == []


def due_together(clock, queues, executor, url) -> list[Orchestrator]:  # type: ignore[no-untyped-def]
    """Six runs due in 5 s in one cohort: hooked (j0, j2, j4) and plain (j1, j3, j5) alternate."""
    at, config = clock.now() + timedelta(seconds=5), configmod.load(None, {})
    members = []
    for i in range(6):
        hooked = {"preRunHook": url} if i % 2 == 0 else {}
        job = JobSpec(name=f"j{i}", id=i + 1, commands=(("true",),), constraints=hooked)
        members.append(Orchestrator(Slot(f"r{i}", job, at), queues, clock, executor, config))
    Cohort(at, clock, gevent.spawn).add(members)
    settle()
    return members


def wait_for_starts(executor: FakeExecutor, count: int) -> None:
    for _ in range(500):  # the hooks answer over real sockets
        if len(executor.requests) == count:
            return
        gevent.sleep(0.01)


def test_it_starts_the_runs_without_hooks_before_calling_any_hook(
    clock, queues, endpoint, monkeypatch
) -> None:
    executor, syncer, order = FakeExecutor(clock), FakeSyncer(queues.syncer), []
    real_start, real_call = executor.start, hooks.call
    monkeypatch.setattr(executor, "start", lambda r: order.append(r.job.name) or real_start(r))
    monkeypatch.setattr(hooks, "call", lambda *args: order.append("hook") or real_call(*args))
    due_together(clock, queues, executor, endpoint.url)
    clock.advance(5)
    wait_for_starts(executor, 6)
    syncer.stop()
    assert order[:4] == ["j1", "j3", "j5", "hook"] and len(executor.requests) == 6


def test_it_sends_every_hook_before_following_the_runs_it_started(
    clock, queues, endpoint, monkeypatch
) -> None:
    executor, syncer, order = FakeExecutor(clock), FakeSyncer(queues.syncer), []
    real_proceed, real_call = Orchestrator.proceed, hooks.call
    monkeypatch.setattr(
        Orchestrator, "proceed", lambda o: order.append(o.slot.job.name) or real_proceed(o)
    )
    monkeypatch.setattr(hooks, "call", lambda *args: order.append("hook") or real_call(*args))
    due_together(clock, queues, executor, endpoint.url)
    clock.advance(5)
    wait_for_starts(executor, 6)
    syncer.stop()
    followed = [name for name in order if name in ("j1", "j3", "j5")]
    assert order[:6] == ["j0", "hook", "j2", "hook", "j4", "hook"] and len(followed) == 3
