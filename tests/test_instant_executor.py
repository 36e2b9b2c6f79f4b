"""The instant executor (benchmarks' stand-in): its cheap event queue behaves like a Queue."""

from __future__ import annotations

import gevent
import pytest
from gevent.queue import Empty

from itinerary.executors.base import KILLED, RUNNING, STARTED, SUCCEEDED, RunRequest
from itinerary.executors.instant import InstantExecutor
from itinerary.jobs import JobSpec


def _request(clock) -> RunRequest:  # type: ignore[no-untyped-def]
    job = JobSpec(name="job", id=1, schedule=None, commands=(("true",),))
    return RunRequest(run_id="r000000000000001", job=job, scheduled_at=clock.now())


def test_it_reports_the_attempt_only_after_start_returned(clock) -> None:
    execution = InstantExecutor(clock).start(_request(clock))
    assert execution.events.empty()
    with pytest.raises(Empty):
        execution.events.get_nowait()
    gevent.sleep(0)  # the hub's callback reports every attempt started in the turn
    kinds = [execution.events.get_nowait().kind for _ in range(3)]
    assert kinds == [STARTED, RUNNING, SUCCEEDED] and execution.events.empty()


def test_it_wakes_a_reader_waiting_for_an_event(clock) -> None:
    executor = InstantExecutor(clock)
    execution = executor.start(_request(clock))
    gevent.sleep(0)
    for _ in range(3):
        execution.events.get()
    reader = gevent.spawn(execution.events.get)
    gevent.sleep(0)
    assert not reader.ready()
    executor.kill(execution, "stop")
    assert reader.get(timeout=1).kind == KILLED
