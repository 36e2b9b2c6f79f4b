"""Cohorts: the orchestrators whose runs start at one instant, claimed and started together.

Runs due at the same instant share a `Cohort`: one greenlet claims them as the
loop launches them, waits for the instant with one timer, and starts them in one
pass that calls `executor.start` for each in turn; every started run then gets
its own greenlet to follow it (step 4 on). Why: waking a greenlet through the
hub costs 7-20 µs here (2 cores, measured), so 10,000 runs due at one minute,
each woken by its own timer, started up to a second late; the pass costs the
executor's start plus a few µs a run. Up to `STARTERS` greenlets share a pass,
so an executor whose start waits on the network (Kubernetes) does not start
one run at a time. `Orchestrator.run` is the same lifecycle for one run in its
own greenlet (restart recovery adopts through it).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from gevent.event import AsyncResult, Event

from itinerary.clock import Clock
from itinerary.orchestrator.run import Orchestrator

# Greenlets sharing a cohort's start pass. One does the whole pass unless an executor's start
# waits on I/O; then the next takes over, so up to this many starts wait at once (more than the
# Kubernetes executor's default burst of 40 creates would gain nothing).
STARTERS = 32
# A cohort holds the cyclic collector off from this long before its instant to the end of its
# start pass, so that no full collection (up to ~100 ms with 10,000 runs in flight, more with
# more) can begin just before the instant and delay every start.
COLLECTOR_AHEAD_S = 0.5
# A cohort of at least WARM_MEMBERS reads its members' requests this long before its instant,
# then keeps the hub turning (never sleeping) until it. After an idle second the caches are
# cold and the core slow to wake: 10,000 starts took 31-57 ms, the first 12-15 ms late; warmed,
# 26-31 ms and 1 ms (bench/scheduler.py --jobs 10000 --every-minute, quiet machine).
WARM_S = 0.05
WARM_MEMBERS = 1000


class Cohort:
    """The orchestrators whose runs start at one instant: one greenlet, one timer, one pass.

    `add` may come at any time (the loop spreads a burst's launches over the iterations
    before it); claims go out as members arrive, and members arriving after the instant
    start as soon as they are claimed. The greenlet ends when no member is left waiting,
    and `on_empty` tells the loop; a later `add` starts a new greenlet.
    """

    def __init__(
        self,
        at: datetime,
        clock: Clock,
        spawn: Callable[..., Any],
        on_empty: Callable[[Cohort], None] | None = None,
    ) -> None:
        self.at = at
        self.clock = clock
        self._spawn = spawn
        self._on_empty = on_empty
        self._new: list[Orchestrator] = []  # to claim
        self._waiting: list[Orchestrator] = []  # claimed, waiting for the instant
        self._flagged: list[Orchestrator] = []  # told to stop before starting
        self._wake = Event()
        self._greenlet: Any = None
        self._holding = False

    def add(self, members: list[Orchestrator]) -> None:
        for member in members:
            member.cohort = self
        self._new.extend(members)
        if self._greenlet is None:
            self._greenlet = self._spawn(self._run)
        else:
            self._wake.set()

    def poke(self, orchestrator: Orchestrator) -> None:
        """A member was cancelled, skipped or released."""
        self._flagged.append(orchestrator)
        self._wake.set()

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # a bug here must not leave its members hanging
            for member in self._new + self._waiting:
                if not member.finished:
                    member.crashed(exc)
            raise
        finally:
            self._hold(False)
            self._greenlet = None
            if self._on_empty is not None:
                self._on_empty(self)

    def _hold(self, hold: bool) -> None:
        """Hold the collector off (or stop holding it) for this cohort."""
        if hold != self._holding:
            self._holding = hold
            if hold:
                _COLLECTOR_HELD.__enter__()
            else:
                _COLLECTOR_HELD.__exit__()

    def _serve(self) -> None:
        while True:
            self._wake.clear()
            self._claim()
            if self._flagged:
                for member in self._flagged:
                    if member.cohort is self and member.held and member.status is not None:
                        member.drop()
                self._flagged.clear()
                self._waiting = [m for m in self._waiting if not m.finished]
            now = self.clock.now()
            if now >= self.at and self._waiting:
                members, self._waiting = self._waiting, []
                self._start(members)
                self._hold(False)
            if self._new:
                continue
            if not self._waiting:
                return
            left = (self.at - now).total_seconds()
            big = len(self._waiting) >= WARM_MEMBERS
            if left > COLLECTOR_AHEAD_S:
                self.clock.wait(self._wake, left - COLLECTOR_AHEAD_S)
            elif left > WARM_S or not big:  # no collection may begin from here to the pass
                self._hold(True)
                self.clock.wait(self._wake, left - WARM_S if big else left)
            else:
                self._hold(True)
                for member in self._waiting:  # 1-2 µs each when cold
                    member.warm()
                self.clock.spin(self._wake, (self.at - self.clock.now()).total_seconds())

    def _claim(self) -> None:
        """Send the new members' claims, then take the answers (the syncer batches them)."""
        while self._new:
            batch, self._new = self._new, []
            claims = []
            for member in batch:
                if member.released:
                    member.close(None)
                    continue
                claims.append((member, member.open_claim()))
            for member, claim in claims:
                reply = claim.reply if claim is not None else None
                member.guarded(partial(self._take, member, reply))

    def _take(self, member: Orchestrator, reply: AsyncResult | None) -> None:
        if member.take_claim(reply):
            self._waiting.append(member)

    def _start(self, members: list[Orchestrator]) -> None:
        queue = deque(members)
        with _COLLECTOR_HELD:
            for _ in range(min(STARTERS, len(queue)) - 1):
                self._spawn(self._helper, queue)
            ready = self._pass(queue)
        self._hand_over(ready)

    def _helper(self, queue: deque[Orchestrator]) -> None:
        """Another starter: it runs only while a start waits on I/O, or once all are done."""
        with _COLLECTOR_HELD:
            ready = self._pass(queue)
        self._hand_over(ready)

    @staticmethod
    def _pass(queue: deque[Orchestrator]) -> list[Orchestrator]:
        """Start members until none is left; those to hand over (started, or to check first)."""
        ready = []
        while queue:
            member = queue.popleft()
            if member.finished:
                continue
            if member.held:
                member.drop()
                continue
            if not member.checks:  # checks ask the loop first: its own greenlet does that
                try:
                    member.launch()
                except Exception as exc:
                    member.crashed(exc)
                    continue
            ready.append(member)
        return ready

    def _hand_over(self, members: list[Orchestrator]) -> None:
        """Give each member its own greenlet to follow its run from here.

        Members with checks first: greenlets run in the order they were made, so every run
        waiting for its hook has sent its request before the first started run is followed,
        and the hooks' answers take their time while those are.
        """
        for member in members:
            member.cohort = None
        for member in sorted(members, key=lambda m: not m.checks):  # stable: order kept
            self._spawn(member.proceed)


class _CollectorHold:
    """The cyclic garbage collector off while any start pass runs (or is about to).

    A pass allocates for every run it starts, and a full collection that falls inside
    it delays every start after it: with 10,000 runs in flight one took 50-150 ms here.
    Held off, the collection runs once the pass is over, before any run is followed.
    Holds nest (cohorts of nearby instants, helper starters).
    """

    def __init__(self) -> None:
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        if self._depth == 0:
            self._was_enabled = gc.isenabled()
            gc.disable()
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._was_enabled:
            gc.enable()


_COLLECTOR_HELD = _CollectorHold()
