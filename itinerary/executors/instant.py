"""The instant executor: every attempt succeeds the moment it starts.

For benchmarks and tests of the scheduler itself, where a real process or pod
would measure the executor instead of the loop. It never runs anything, so it
must never be configured for real work; `itinerary.app` does not offer it.

Like a real executor, it reports events after `start` has returned: the attempts
started in one turn of the hub get their started, running and succeeded events
from one hub callback, stamped when it runs, so a burst of starts costs little
more than the scheduler's own work (a real executor's events come later from a
watch). Its event queues are `SimpleQueue`s, which have all an orchestrator uses of
a `Queue` (put, get, get_nowait, empty) at half the cost to make.
"""

from __future__ import annotations

from typing import Any

import gevent
from gevent.queue import SimpleQueue

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


class InstantExecutor:
    """Starts nothing; reports started, running and succeeded (exit code 0) at once."""

    name = "instant"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started = 0
        self._unreported: list[Execution] = []

    def start(self, request: RunRequest) -> Execution:
        execution = Execution(request.run_id, request.attempt, {"instant": True}, SimpleQueue())
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
