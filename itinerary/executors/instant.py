"""The instant executor: every attempt succeeds the moment it starts.

For benchmarks and tests of the scheduler itself, where a real process or pod
would measure the executor instead of the loop. It never runs anything, so it
must never be configured for real work; `itinerary.app` does not offer it.
"""

from __future__ import annotations

from typing import Any

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

    def start(self, request: RunRequest) -> Execution:
        now = self.clock.now()
        handle = {"instant": True}
        execution = Execution(request.run_id, request.attempt, handle)
        execution.events.put(ExecEvent(STARTED, now, handle=handle))
        execution.events.put(ExecEvent(RUNNING, now))
        execution.events.put(ExecEvent(SUCCEEDED, now, exit_code=0, reason="exit code 0"))
        self.started += 1
        return execution

    def adopt(self, request: RunRequest, handle: dict[str, Any]) -> Execution | None:
        """Nothing outlives a process here, so there is never anything to adopt."""
        return None

    def kill(self, execution: Execution, reason: str, grace_seconds: float = 10.0) -> None:
        execution.events.put(ExecEvent(KILLED, self.clock.now(), reason=reason))

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        return ""

    def close(self) -> None:
        """Nothing to watch."""
