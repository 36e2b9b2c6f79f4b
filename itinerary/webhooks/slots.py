"""The global bound on webhook requests in flight, shared fairly between destinations.

`--webhook-concurrency` requests at most are in flight. A destination may use
all but one of them (so a receiver that is slow, or never answers until the
read timeout, always leaves a slot to the others), and a freed slot goes to the
waiting destination with the fewest requests in flight, not to whoever queued
first: a burst to one receiver never stands in front of another's message.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from gevent.event import Event


@dataclass
class Holder:
    """Per destination: its requests in flight."""

    in_flight: int = 0


@dataclass
class _Waiter:
    holder: Holder
    seq: int
    granted: Event = field(default_factory=Event)


class FairSlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()

    def acquire(self, holder: Holder) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            holder.in_flight += 1
            return
        waiter = _Waiter(holder, next(self._seq))
        self._waiters.append(waiter)
        try:
            waiter.granted.wait()
        except BaseException:  # killed while waiting: give back a slot granted meanwhile
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.granted.is_set():
                self.release(holder)
            raise

    def release(self, holder: Holder) -> None:
        holder.in_flight -= 1
        if not self._waiters:
            self.free += 1
            return
        chosen = min(self._waiters, key=lambda w: (w.holder.in_flight, w.seq))
        self._waiters.remove(chosen)
        chosen.holder.in_flight += 1
        chosen.granted.set()
