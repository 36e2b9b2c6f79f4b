"""The instant executor: every attempt succeeds the moment it starts.

For benchmarks and tests of the scheduler itself, where a real process or pod
would measure the executor instead of the loop. It never runs anything, so it
must never be configured for real work; `itinerary.app` does not offer it.

Like a real executor, it reports events after `start` has returned: the attempts
started in one turn of the hub get their started, running and succeeded events
from one hub callback, stamped when it runs, so a burst of starts costs little
more than the scheduler's own work (a real executor's events come later from a
watch). Its event queues are `_Events`: all an orchestrator uses of a `Queue` (put, get,
get_nowait, empty) on a list, with an `Event` made only when a reader has to wait. In a
burst of 9,000 starts a gevent `SimpleQueue` cost 3.5 µs to make (fresh memory each),
more than half of the whole start pass; a stand-in must not measure itself.
"""

from __future__ import annotations

from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Empty

from itinerary.clock import Clock
from itinerary.executors.base import (
    KILLED,
    RUNNING,
    STARTED,
    SUCCEEDED,
    ExecEvent,
    Execution,
    RunRequest,
)


class _Events:
    """An attempt's events: a list, and a waiter only once somebody waits for one."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ExecEvent] = []
        self._waiter: Event | None = None

    def put(self, event: ExecEvent) -> None:
        self._items.append(event)
        if self._waiter is not None:
            self._waiter.set()

    def empty(self) -> bool:
        return not self._items

    def get_nowait(self) -> ExecEvent:
        if not self._items:
            raise Empty
        return self._items.pop(0)

    def get(self) -> ExecEvent:
        while not self._items:
            if self._waiter is None:
                self._waiter = Event()
            self._waiter.clear()
            self._waiter.wait()
        return self._items.pop(0)


class InstantExecutor:
    """Starts nothing; reports started, running and succeeded (exit code 0) at once."""

    name = "instant"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started = 0
        self._unreported: list[Execution] = []

    def start(self, request: RunRequest) -> Execution:
        execution = Execution(request.run_id, request.attempt, {"instant": True}, _Events())
        if not self._unreported:
            gevent.get_hub().loop.run_callback(self._report)
        self._unreported.append(execution)
        self.started += 1
        return execution

    def _report(self) -> None:
        unreported, self._unreported = self._unreported, []
        at = self.clock.now()
        for execution in unreported:
            events = execution.events
            events.put(ExecEvent(STARTED, at, handle=execution.handle))
            events.put(ExecEvent(RUNNING, at))
            events.put(ExecEvent(SUCCEEDED, at, exit_code=0, reason="exit code 0"))

    def adopt(self, request: RunRequest, handle: dict[str, Any]) -> Execution | None:
        """Nothing outlives a process here, so there is never anything to adopt."""
        return None

    def kill(self, execution: Execution, reason: str, grace_seconds: float = 10.0) -> None:
        execution.events.put(ExecEvent(KILLED, self.clock.now(), reason=reason))

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        return ""

    def close(self) -> None:
        """Nothing to watch."""
