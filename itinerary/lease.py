"""One scheduling Itinerary per database: a lease row; the holder is the leader.

Slot claims keep two schedulers started together from running a slot twice, but a
second process scheduling while the first is live would take the first one's claimed,
not yet started runs for a dead predecessor's and start them too (restart recovery).
So a process schedules only while it holds the lease: the `scheduler_lease` row names
its holder and an expiry. The holder renews it every `RENEW_EVERY`; another process
may take it only once it has expired (its holder was killed without releasing it) or
was released (a clean shutdown releases it, so an upgrade hands over at once).
Every replica serves the API meanwhile (itinerary/leader.py); a standby asks again
every `RETRY_EVERY` and logs who leads and when the lease will expire.

Why a row rather than a PostgreSQL advisory lock: one mechanism for the three
dialects, its holder is visible to every replica (`/readyz` names the leader), and a
vanished leader's lock would stay held until TCP keepalive noticed (hours by default),
where a row simply expires.

Fencing. The holder notes the monotonic time just before each renewal is sent; the
renewal, once answered, proves nobody can take the lease before that time + `TTL`
(by the wall clocks of the others, hence `MARGIN` for clock skew and a slow answer).
`valid()` is true until then minus `MARGIN`: a cheap check with no I/O, made before
every start (itinerary/leader.py `FencedExecutor`), so a leader cut off from the
database stops starting runs before a standby can take over. `keep` steps down when
the fence has passed without a renewal, or when a renewal finds another holder.

The row is written directly through `Database.write`, like the migrations, rather
than through the syncer: it must not wait behind a long queue of run updates, and it
is one small statement every few seconds. Times come from the injected clock.

`Elector` is what the rest of Itinerary relies on (fence, stand-by and renewal loops);
`Lease` is the database row, and itinerary/kubelease.py a Kubernetes `Lease` object
with client-go's algorithm, for `--leader-election=kubernetes`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw
from gevent.event import Event

from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.models import SchedulerLease

log = logging.getLogger(__name__)

NAME = "scheduler"
TTL = timedelta(seconds=10)
RENEW_EVERY = 2.0  # seconds
# The holder stops starting runs this long before its lease could expire for the others.
MARGIN = 3.0  # seconds
RETRY_EVERY = 1.0  # seconds between two attempts of a standby
OVERDUE = 1.0  # seconds past RENEW_EVERY after which starts wait for the renewal
REPORT_EVERY = 60.0  # seconds between two "standing by" log lines


@dataclass(frozen=True)
class Holder:
    """Who holds the lease, until when."""

    name: str
    until: datetime

    def __str__(self) -> str:
        return f"{self.name}, lease until {self.until:%Y-%m-%d %H:%M:%S}Z"


class NoCluster(Exception):
    """`--leader-election=kubernetes` without a Kubernetes API to reach: the line to show."""


def make_elector(config: Config, database: Database, clock: Clock) -> Elector:
    """The lease `--leader-election` asks for: a database row, or a Kubernetes `Lease`."""
    if config.leader_election == "kubernetes":
        from itinerary.kubelease import kube_lease  # the client loads only when asked for

        return kube_lease(config, clock)
    return Lease(database, clock)


def new_holder_name() -> str:
    """This process, recognisable in logs: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Elector(ABC):
    """What `Leadership` and `FencedExecutor` need of a lease, whatever keeps it.

    A subclass says how one attempt goes (`_attempt`: None when this process holds the
    lease afterwards, else who does) and how it lets go (`release`); this class keeps the
    fence from the attempts that succeed, and the stand-by and renewal loops. `transient`
    are the errors a retry may cure (a database or API server away for a moment).
    """

    transient: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, clock: Clock, name: str | None = None) -> None:
        self.clock = clock
        self.name = name or new_holder_name()
        self.holder: Holder | None = None  # who held it at the last answer (None: unknown)
        self._valid_until = float("-inf")  # monotonic: no start after this
        self._renewed = float("-inf")  # monotonic: when the latest successful renewal began
        self._next = Event()  # set (and replaced) by the next successful renewal

    @abstractmethod
    def _attempt(self) -> Holder | None:
        """One try to take or renew: None when this process holds the lease afterwards."""

    @abstractmethod
    def release(self) -> None:
        """Let the lease go at a clean stop, so another process takes over at once."""

    def take(self) -> Holder | None:
        """Take or renew the lease; None when this process holds it, else who does."""
        began = self.clock.monotonic()
        holder = self._attempt()
        if holder is not None:
            self._valid_until = float("-inf")
            return holder
        self._valid_until = began + TTL.total_seconds() - MARGIN
        self._renewed = began
        done, self._next = self._next, Event()
        done.set()
        return None

    def valid(self) -> bool:
        """True while this process may start runs: no I/O (see the module docstring)."""
        return self.clock.monotonic() < self._valid_until

    def wait_renewed(self) -> None:
        """Block the caller while a renewal is overdue and the fence still holds.

        A long start pass (hundreds of local processes forked in turn) keeps the hub so
        busy that the renewal's few round trips wait behind every start: its starters
        pause here instead, the renewal lands, and the pass goes on without fencing.
        """
        while self.clock.monotonic() - self._renewed > RENEW_EVERY + OVERDUE and self.valid():
            self.clock.wait(self._next, max(0.0, self._valid_until - self.clock.monotonic()))

    def wait(self, stopping: Event) -> bool:
        """Stand by until this process holds the lease (True) or `stopping` is set (False)."""
        reported = None
        while not stopping.is_set():
            try:
                holder = self.take()
            except self.transient as exc:
                log.warning("cannot ask for the scheduling lease (will retry): %s", exc)
                self.clock.wait(stopping, RETRY_EVERY)
                continue
            if holder is None:
                log.info("took the scheduling lease: this process schedules (%s)", self.name)
                return True
            now = self.clock.monotonic()
            if reported is None or now - reported >= REPORT_EVERY:
                left = max(0.0, (holder.until - self.clock.now()).total_seconds())
                log.warning(
                    "another Itinerary schedules (%s, free in %.0fs unless renewed); "
                    "standing by, serving the API",
                    holder,
                    left,
                )
                reported = now
            self.clock.wait(stopping, RETRY_EVERY)
        return False

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew until this greenlet is killed; `on_lost(why)` once the lease may be gone."""
        while True:
            self.clock.sleep(RENEW_EVERY)
            try:
                holder = self.take()
            except self.transient as exc:
                if self.valid():
                    log.warning("cannot renew the scheduling lease (will retry): %s", exc)
                    continue
                on_lost(f"could not renew the scheduling lease in time ({exc})")
                return
            if holder is not None:
                on_lost(f"another Itinerary took the scheduling lease ({holder})")
                return


class Lease(Elector):
    """The lease as a row of the database (see the module docstring)."""

    transient = (pw.PeeweeException, OSError)

    def __init__(self, database: Database, clock: Clock, name: str | None = None) -> None:
        super().__init__(clock, name)
        self.database = database

    def _attempt(self) -> Holder | None:
        row = self.database.write(self._take, self.clock.now())
        self.holder = Holder(row.holder, row.expires_at)
        return None if row.holder == self.name else self.holder

    def _take(self, now: datetime) -> SchedulerLease:
        writer = self.database.writer
        mine = {"holder": self.name, "expires_at": now + TTL}
        with writer.atomic():
            free = (SchedulerLease.holder == self.name) | (SchedulerLease.expires_at < now)
            SchedulerLease.update(mine).where((SchedulerLease.name == NAME) & free).execute(writer)
            SchedulerLease.insert(name=NAME, **mine).on_conflict_ignore().execute(writer)
            return SchedulerLease.select().where(SchedulerLease.name == NAME).bind(writer).get()

    def release(self) -> None:
        """Let a standby take over at once (best effort: expiry frees it anyway)."""
        self._valid_until = float("-inf")
        query = SchedulerLease.update(expires_at=self.clock.now() - timedelta(microseconds=1))
        query = query.where((SchedulerLease.name == NAME) & (SchedulerLease.holder == self.name))
        try:
            self.database.write(query.execute, self.database.writer)
        except (pw.PeeweeException, OSError) as exc:
            log.warning("cannot release the scheduling lease (it expires by itself): %s", exc)
