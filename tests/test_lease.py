"""The scheduling lease: one Itinerary schedules per database, a second one stands by."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
from gevent.event import Event

from itinerary import lease as leasemod
from itinerary.clock import FakeClock, settle
from itinerary.db import Database
from itinerary.lease import Holder, Lease
from tests.conftest import ROOT


def test_the_first_takes_it_and_a_second_is_told_who_holds_it(database, clock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    held = second.take()
    assert held == Holder("first", clock.now() + leasemod.TTL)
    assert "first, lease until 2026-03-01 12:00:30Z" == str(held)


def test_renewing_keeps_it_and_expiry_frees_it(database: Database, clock: FakeClock) -> None:
    first, second = Lease(database, clock, "first"), Lease(database, clock, "second")
    assert first.take() is None
    clock.advance(20)
    assert first.take() is None  # renewed: 30 s from now
    clock.advance(20)
    assert second.take() is not None
    clock.advance(11)  # first was killed: nobody renewed
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
    lost: list[Holder] = []
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
    assert [h.name for h in lost] == ["second"]


def _serve(tmp_path: Path, name: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
    env.update(
        ITINERARY_DB_DSN=f"sqlite:///{tmp_path}/it.db",
        ITINERARY_PORT="0",
        ITINERARY_LOG_DIR=str(tmp_path / f"logs-{name}"),
    )
    return subprocess.Popen(
        [sys.executable, str(ROOT / "itinerary.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_a_second_process_stands_by_and_takes_over_when_the_first_stops(tmp_path) -> None:
    first = _serve(tmp_path, "first")
    second = None
    try:
        assert "running at" in first.stdout.readline()
        second = _serve(tmp_path, "second")
        standing_by = second.stderr.readline()
        while "standing by" not in standing_by and standing_by:
            standing_by = second.stderr.readline()
        assert "another Itinerary schedules on this database" in standing_by
        assert second.poll() is None
        began = time.monotonic()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        # The first released the lease: the second takes over at its next attempt.
        assert "running at" in second.stdout.readline()
        assert time.monotonic() - began < 10
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert "Traceback" not in first.stderr.read() + second.stderr.read()
