"""Every replica serves; the one holding the lease schedules (issue 14).

`Leadership` is the state a replica's HTTP side reads (`/readyz`, `/leaderz`, the
command bus): whether this process leads, and who does. `App` runs `campaign`
in a greenlet from start-up on: stand by until the lease is won, then start the
scheduling side (scheduler, command reader), then keep the lease. A leader that
loses it (or is fenced) steps down by shutting the process down, like client-go's
`OnStoppedLeading`: a fresh process serves at once as a standby, where an in-place
step-down would have to reset every piece of scheduling state correctly.

`FencedExecutor` wraps the executor the scheduler starts runs with: every start
first checks `Elector.valid()` (monotonic time, no I/O; a database or Kubernetes
lease), so a leader that could not renew in time never starts a run after a standby
may have taken over. A start also waits while a renewal is overdue
(`Elector.wait_renewed`): a long start pass
would otherwise starve the renewal of hub turns and fence a healthy leader. A refused
start leaves the run claimed and unstarted for the next leader, and the leader
steps down at once (`on_fenced`), as the runs it left would otherwise wait for a
restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from itinerary.executors.base import Execution, RunRequest
from itinerary.lease import Elector

log = logging.getLogger(__name__)

LEADER, STANDBY = "leader", "standby"


class Fenced(Exception):
    """The lease may have passed to another process: this one must not start runs."""


class FencedExecutor:
    """The executor, with a lease check before every start (see the module docstring)."""

    def __init__(
        self,
        executor: Any,
        may_start: Callable[[], bool],
        on_fenced: Callable[[], None],
        wait_renewed: Callable[[], None] = lambda: None,
    ) -> None:
        self._executor = executor
        self._may_start = may_start
        self._on_fenced = on_fenced
        self._wait_renewed = wait_renewed

    def start(self, request: RunRequest) -> Execution:
        self._wait_renewed()
        if not self._may_start():
            self._on_fenced()
            raise Fenced(f"not started: the scheduling lease may have passed ({request.run_id})")
        return self._executor.start(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)


class Leadership:
    """This replica's role, read by the HTTP side; `campaign` drives it."""

    def __init__(self, lease: Elector) -> None:
        self.lease = lease
        self.leading = False  # the lease is ours: scheduler messages go to the local loop
        self.scheduling: Callable[[], tuple[bool, str]] | None = None  # the loop's readiness
        self.fenced = Event()

    @property
    def name(self) -> str:
        return self.lease.name

    def try_first(self) -> None:
        """One attempt before serving: a free lease is ours before the first request comes."""
        try:
            if self.lease.take() is None:
                self.leading = True
                log.info("took the scheduling lease: this process schedules (%s)", self.name)
        except self.lease.transient as exc:
            log.warning("cannot ask for the scheduling lease yet (will retry): %s", exc)

    def may_start(self) -> bool:
        return self.leading and not self.fenced.is_set() and self.lease.valid()

    def on_fenced(self) -> None:
        if not self.fenced.is_set():
            log.error("no more runs start here: the scheduling lease may pass to another process")
            self.fenced.set()

    def campaign(
        self, stopping: Event, elected: Callable[[], None], lost: Callable[[str], None]
    ) -> None:
        """Stand by until the lease is won, `elected()`, and renew it until it is lost.

        Renewals start at once, alongside `elected()`: recovering a few hundred runs can
        take longer than the fence allows without one.
        """
        if not self.lease.valid() and not self.lease.wait(stopping):
            return
        self.leading = True
        renewing = gevent.spawn(self.lease.keep, lost)
        try:
            elected()
            renewing.get()  # re-raises a crash of the renewals (the App shuts down)
        finally:
            renewing.kill()

    def role(self) -> dict[str, Any]:
        """`role`, this process's name, and the leader's name (None when nobody is known)."""
        holder = self.lease.holder
        leader = self.name if self.leading else (holder.name if holder is not None else None)
        return {"role": LEADER if self.leading else STANDBY, "name": self.name, "leader": leader}

    def schedules(self) -> tuple[bool, str]:
        """Whether this process schedules right now (its loop ticking, its lease valid)."""
        if not self.leading:
            return False, f"standby: {self.role()['leader'] or 'no leader known yet'} schedules"
        if self.fenced.is_set() or not self.lease.valid():
            return False, "the scheduling lease could not be renewed in time"
        if self.scheduling is None:
            return False, "taking over: loading jobs and unfinished runs"
        return self.scheduling()

    def ready(self) -> tuple[bool, str]:
        """Readiness of the scheduling side: a standby is ready (it serves the API)."""
        if not self.leading:
            return True, self.schedules()[1]
        return self.schedules()
