"""Time, injected.

Every component reads time from a clock object instead of the system, so tests
drive time forward without sleeping. `RealClock` is production; `FakeClock`
moves only when told (`advance`) and wakes its sleepers in deadline order.
"""

from __future__ import annotations

import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import gevent
from gevent.event import Event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations)."""

    def sleep(self, seconds: float) -> None:
        """Suspend the calling greenlet for `seconds`."""

    def sleep_until(self, when: datetime) -> None:
        """Suspend the calling greenlet until `when` (returns at once if past)."""

    def wait(self, event: Event, timeout: float | None) -> bool:
        """Wait for `event` or `timeout` seconds; True if the event is set."""

    def spin(self, event: Event, timeout: float) -> bool:
        """As `wait`, but keep the hub turning: for the last moments before an instant."""


class RealClock:
    """The system clock, with gevent's cooperative sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        gevent.sleep(max(0.0, seconds))

    def sleep_until(self, when: datetime) -> None:
        self.sleep((when - self.now()).total_seconds())

    def wait(self, event: Event, timeout: float | None) -> bool:
        return event.wait(None if timeout is None else max(0.0, timeout))

    def spin(self, event: Event, timeout: float) -> bool:
        """Yield to every other greenlet in turn until `event` or `timeout`, never sleeping.

        A core left idle for a second here (a virtual machine) is slow to wake: the first
        start of a burst came 12-15 ms late after one, against 1 ms when the process kept
        turning through the last few tens of ms (bench/scheduler.py; orchestrator/cohort.py).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while not event.is_set() and time.monotonic() < deadline:
            gevent.sleep(0)
        return event.is_set()


class FakeClock:
    """A clock that stands still until `advance` moves it.

    Sleepers are kept in a heap by deadline; `advance` wakes them one deadline
    at a time, letting every runnable greenlet run in between, so the order of
    events in a test is the order they would have in real time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, Event]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return (self._now - EPOCH).total_seconds()

    def _timer(self, deadline: datetime) -> Event:
        ev = Event()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), ev))
        return ev

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            gevent.sleep(0)
            return
        self._timer(when).wait()

    def wait(self, event: Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        if timeout is None:
            event.wait()
            return True
        timer = self._timer(self._now + timedelta(seconds=max(0.0, timeout)))
        gevent.wait([event, timer], count=1)
        return event.is_set()

    def spin(self, event: Event, timeout: float) -> bool:
        """Nothing to keep awake: the same as `wait`."""
        return self.wait(event, timeout)

    @property
    def next_deadline(self) -> datetime | None:
        """The earliest time a sleeper is waiting for, if any."""
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking sleepers in deadline order."""
        target = self._now + timedelta(seconds=seconds)
        settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, ev = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            ev.set()
            settle()
        self._now = target
        settle()

    def set(self, when: datetime) -> None:
        """Jump to `when` (forward only), waking sleepers on the way."""
        self.advance((when - self._now).total_seconds())


def settle(rounds: int = 8) -> None:
    """Let every runnable greenlet run until it blocks again."""
    for _ in range(rounds):
        gevent.sleep(0)
    gevent.idle()
