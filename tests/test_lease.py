"""The scheduling lease: one Itinerary schedules per database, a second one stands by."""

from __future__ import annotations

import gevent
from gevent.event import Event

from itinerary import lease as leasemod
from itinerary.clock import FakeClock, settle
from itinerary.db import Database
from itinerary.lease import Holder, Lease
from tests.dbfaults import Outage


def test_the_first_takes_it_and_a_second_is_told_who_holds_it(database, clock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    held = second.take()
    assert held == Holder("first", clock.now() + leasemod.TTL)
    assert "first, lease until 2026-03-01 12:00:10Z" == str(held)


def test_renewing_keeps_it_and_expiry_frees_it(database: Database, clock: FakeClock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    clock.advance(8)
    assert first.take() is None  # renewed: 10 s from now
    clock.advance(8)
    assert second.take() is not None
    clock.advance(3)  # first was killed: nobody renewed
    assert second.take() is None
    assert first.take() == Holder("second", clock.now() + leasemod.TTL)


def test_release_lets_a_standby_take_over_at_once(database, clock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    second.release()  # not its lease: nothing happens
    assert second.take() is not None
    first.release()
    assert second.take() is None


def test_a_standby_waits_until_the_lease_is_free_or_it_is_stopped(database, clock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    waiting = gevent.spawn(second.wait, Event())
    for _ in range(3):
        clock.advance(leasemod.RETRY_EVERY)
        settle()
    assert not waiting.ready()
    first.release()
    clock.advance(leasemod.RETRY_EVERY)
    assert waiting.get(timeout=5) is True
    stopping = Event()
    third = gevent.spawn(first.wait, stopping)
    settle()
    stopping.set()
    assert third.get(timeout=5) is False


def test_the_holder_steps_down_when_someone_else_took_it(database, clock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    lost: list[str] = []
    keeping = gevent.spawn(first.keep, lost.append)
    clock.advance(leasemod.RENEW_EVERY)  # renewed
    settle()
    assert lost == [] and second.take() is not None
    keeping.kill()  # first is cut off: no more renewals
    clock.advance(leasemod.TTL.total_seconds() + 1)
    assert second.take() is None
    keeping = gevent.spawn(first.keep, lost.append)
    clock.advance(leasemod.RENEW_EVERY)
    keeping.join(timeout=5)
    assert len(lost) == 1 and "another Itinerary took the scheduling lease (second" in lost[0]


def test_it_fences_the_holder_before_the_lease_could_expire(database, clock) -> None:
    first = Lease(database, clock, "first")
    assert not first.valid()  # never held
    assert first.take() is None
    assert first.valid()
    clock.advance(leasemod.TTL.total_seconds() - leasemod.MARGIN - 0.01)
    assert first.valid()
    clock.advance(0.02)  # no renewal: it may no longer start runs, well before expiry
    assert not first.valid()
    assert Lease(database, clock, "second").take() is not None  # not free yet
    assert first.take() is None and first.valid()


def test_it_steps_down_when_renewals_fail_past_the_fence(database, clock) -> None:
    outage = Outage(database)
    try:
        first = Lease(outage.database, clock, "first")
        assert first.take() is None
        lost: list[str] = []
        keeping = gevent.spawn(first.keep, lost.append)
        outage.cut()
        for _ in range(int(leasemod.TTL.total_seconds() / leasemod.RENEW_EVERY)):
            clock.advance(leasemod.RENEW_EVERY)
            keeping.join(timeout=0.5)
            if lost:
                break
        assert not first.valid()
        assert len(lost) == 1 and "could not renew the scheduling lease in time" in lost[0]
        outage.restore()
    finally:
        outage.close()


def test_it_holds_starts_back_while_a_renewal_is_overdue(database, clock) -> None:
    first = Lease(database, clock, "first")
    assert first.take() is None
    first.wait_renewed()  # fresh: returns at once
    clock.advance(leasemod.RENEW_EVERY + leasemod.OVERDUE + 0.5)
    waiting = gevent.spawn(first.wait_renewed)
    settle()
    assert not waiting.ready()  # overdue: the start waits for the renewal...
    assert first.take() is None
    waiting.join(timeout=5)
    assert waiting.ready()  # ...which lets it go on
    clock.advance(leasemod.TTL.total_seconds())
    first.wait_renewed()  # fenced: never blocks (the start is refused instead)
