"""A cohort's last moments before its instant: a big one warms its members and keeps the hub
turning, then starts them all at the instant, not before."""

from __future__ import annotations

import time
from datetime import timedelta

import gevent
from gevent.event import Event

from itinerary import config as configmod
from itinerary.clock import RealClock, settle
from itinerary.jobs import JobSpec
from itinerary.orchestrator import Cohort, Orchestrator, Slot, cohort
from tests.fakes import FakeExecutor, FakeSyncer


def members(clock, queues, executor, count: int) -> list[Orchestrator]:  # type: ignore[no-untyped-def]
    at, config = clock.now() + timedelta(seconds=5), configmod.load(None, {})
    jobs = [JobSpec(name=f"j{i}", id=i + 1, commands=(("true",),)) for i in range(count)]
    return [Orchestrator(Slot(f"r{j.id}", j, at), queues, clock, executor, config) for j in jobs]


def test_it_warms_a_big_cohort_just_before_its_instant_and_starts_it_then(
    clock, queues, monkeypatch
) -> None:
    executor, syncer, warmed = FakeExecutor(clock), FakeSyncer(queues.syncer), []
    monkeypatch.setattr(cohort, "WARM_MEMBERS", 4)
    monkeypatch.setattr(Orchestrator, "warm", lambda o: warmed.append(o.slot.run_id))
    Cohort(clock.now() + timedelta(seconds=5), clock, gevent.spawn).add(
        members(clock, queues, executor, 4)
    )
    clock.advance(5 - cohort.WARM_S - 0.01)
    assert warmed == [] and executor.requests == []
    clock.advance(0.02)
    assert sorted(warmed) == ["r1", "r2", "r3", "r4"] and executor.requests == []
    clock.advance(cohort.WARM_S)
    settle()
    syncer.stop()
    assert len(executor.requests) == 4


def test_it_leaves_a_small_cohort_asleep_until_its_instant(clock, queues, monkeypatch) -> None:
    executor, syncer, warmed = FakeExecutor(clock), FakeSyncer(queues.syncer), []
    monkeypatch.setattr(Orchestrator, "warm", lambda o: warmed.append(o.slot.run_id))
    Cohort(clock.now() + timedelta(seconds=5), clock, gevent.spawn).add(
        members(clock, queues, executor, 3)
    )
    clock.advance(5)
    settle()
    syncer.stop()
    assert warmed == [] and len(executor.requests) == 3


def test_it_spins_on_the_real_clock_letting_every_other_greenlet_run() -> None:
    turns: list[int] = []

    def other() -> None:
        while True:
            turns.append(1)
            gevent.sleep(0)

    ticker = gevent.spawn(other)
    began = time.monotonic()
    set_early = RealClock().spin(Event(), 0.05)
    spent = time.monotonic() - began
    ticker.kill()
    assert not set_early and spent >= 0.05 and len(turns) > 100


def test_it_stops_spinning_as_soon_as_the_event_is_set() -> None:
    event = Event()
    gevent.spawn_later(0.01, event.set)
    began = time.monotonic()
    assert RealClock().spin(event, 5.0) and time.monotonic() - began < 1.0
