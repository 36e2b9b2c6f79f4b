"""Test doubles shared by the scheduler, orchestrator and other component tests.

`FakeExecutor` records what it was asked to start and lets the test decide every
event; `FakeSyncer` answers `ClaimSlot` from a set of claimed slots and keeps
every other message, so a test can assert on what would have been written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import gevent
from gevent.queue import Queue

from itinerary.clock import Clock
from itinerary.executors.base import (
    FAILED,
    KILLED,
    RUNNING,
    STARTED,
    SUCCEEDED,
    ExecEvent,
    Execution,
    ExecutorError,
    RunRequest,
)
from itinerary.messages import ClaimSlot, RunUpdate


class FakeExecutor:
    """An executor whose attempts do only what the test says."""

    name = "fake"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[RunRequest] = []
        self.executions: dict[tuple[str, int], Execution] = {}
        self.killed: list[tuple[str, str]] = []
        self.adoptable: dict[str, Execution] = {}
        self.fail_start: str | None = None

    def start(self, request: RunRequest) -> Execution:
        if self.fail_start:
            raise ExecutorError(self.fail_start)
        self.requests.append(request)
        execution = Execution(request.run_id, request.attempt, {"fake": request.run_id})
        self.executions[(request.run_id, request.attempt)] = execution
        execution.events.put(ExecEvent(STARTED, request.scheduled_at, handle=execution.handle))
        return execution

    def adopt(self, request: RunRequest, handle: dict[str, Any]) -> Execution | None:
        return self.adoptable.get(request.run_id)

    def kill(self, execution: Execution, reason: str, grace_seconds: float = 10.0) -> None:
        self.killed.append((execution.run_id, reason))
        execution.events.put(ExecEvent(KILLED, self.clock.now(), reason=reason))

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        return ""

    def close(self) -> None:
        """Nothing to close."""

    # --- test controls ---

    def execution(self, run_id: str, attempt: int = 1) -> Execution:
        return self.executions[(run_id, attempt)]

    def running(self, run_id: str, at: datetime, attempt: int = 1) -> None:
        self.execution(run_id, attempt).events.put(ExecEvent(RUNNING, at))

    def exit(self, run_id: str, at: datetime, code: int = 0, attempt: int = 1) -> None:
        kind = SUCCEEDED if code == 0 else FAILED
        self.execution(run_id, attempt).events.put(
            ExecEvent(kind, at, exit_code=code, reason=None if code == 0 else f"exit code {code}")
        )


class FakeSyncer:
    """Drains a syncer inbox: claims are granted once per slot, everything else is kept."""

    def __init__(self, inbox: Queue, claimed: set[tuple[int, datetime]] | None = None) -> None:
        self.inbox = inbox
        self.claimed = claimed if claimed is not None else set()
        self.claims: list[ClaimSlot] = []
        self.updates: list[RunUpdate] = []
        self.other: list[Any] = []
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            msg = self.inbox.get()
            if isinstance(msg, ClaimSlot):
                key = (msg.job_id, msg.scheduled_at)
                ok = key not in self.claimed
                self.claimed.add(key)
                if ok:
                    self.claims.append(msg)
                msg.reply.set(ok)
            elif isinstance(msg, RunUpdate):
                self.updates.append(msg)
            else:
                self.other.append(msg)

    def statuses(self, run_id: str) -> list[str]:
        """The run's recorded states in order, starting with its claim."""
        first = [c.status for c in self.claims if c.run_id == run_id]
        return first + [u.status for u in self.updates if u.run_id == run_id and u.status]

    def final(self, run_id: str) -> RunUpdate | None:
        done = [u for u in self.updates if u.run_id == run_id and u.completed_at]
        return done[-1] if done else None

    def stop(self) -> None:
        self.greenlet.kill()
