"""One scheduling Itinerary per database: a lease row, taken before the scheduler starts.

Slot claims keep two schedulers started together from running a slot twice, but a
second process started while the first is live would take the first one's claimed,
not yet started runs for a dead predecessor's and start them too (restart recovery).
So a process schedules only while it holds the lease: the `scheduler_lease` row names
its holder and an expiry. The holder renews it every `RENEW_EVERY`; another process
may take it only once it has expired (its holder was killed without releasing it) or
was released (a clean shutdown releases it, so a restart or an upgrade takes over at
once). A process that finds the lease held stands by in start-up, asking again every
`RETRY_EVERY`, and says so in its log.

A holder that cannot reach the database keeps scheduling (its claims wait in the
syncer like every other write); it steps down only when a renewal reaches the
database and finds someone else holding the lease, which happens only if it was cut
off from the database for longer than `TTL` while a standby was not.

The row is written directly through `Database.write`, like the migrations, rather
than through the syncer: it must not wait behind a long queue of run updates, and it
is one small statement every few seconds. Times come from the injected clock; the TTL
leaves room for the clock skew of machines kept by NTP.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw
from gevent.event import Event

from itinerary.clock import Clock
from itinerary.db import Database, SchedulerLease

log = logging.getLogger(__name__)

NAME = "scheduler"
TTL = timedelta(seconds=30)
RENEW_EVERY = 10.0  # seconds
RETRY_EVERY = 2.0  # seconds between two attempts of a standby
REPORT_EVERY = 60.0  # seconds between two "standing by" log lines


@dataclass(frozen=True)
class Holder:
    """Who holds the lease, until when."""

    name: str
    until: datetime

    def __str__(self) -> str:
        return f"{self.name}, lease until {self.until:%Y-%m-%d %H:%M:%S}Z"


def new_holder_name() -> str:
    """This process, recognisable in logs: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Lease:
    def __init__(self, database: Database, clock: Clock, name: str | None = None) -> None:
        self.database = database
        self.clock = clock
        self.name = name or new_holder_name()

    def take(self) -> Holder | None:
        """Take or renew the lease; None when this process holds it, else who does."""
        return self.database.write(self._take, self.clock.now())

    def _take(self, now: datetime) -> Holder | None:
        writer = self.database.writer
        mine = {"holder": self.name, "expires_at": now + TTL}
        with writer.atomic():
            free = (SchedulerLease.holder == self.name) | (SchedulerLease.expires_at < now)
            SchedulerLease.update(mine).where((SchedulerLease.name == NAME) & free).execute(writer)
            SchedulerLease.insert(name=NAME, **mine).on_conflict_ignore().execute(writer)
            row = SchedulerLease.select().where(SchedulerLease.name == NAME).bind(writer).get()
        return None if row.holder == self.name else Holder(row.holder, row.expires_at)

    def wait(self, stopping: Event) -> bool:
        """Stand by until this process holds the lease (True) or `stopping` is set (False)."""
        reported = None
        while not stopping.is_set():
            holder = self.take()
            if holder is None:
                if reported is not None:
                    log.info("took over the scheduling lease")
                return True
            now = self.clock.monotonic()
            if reported is None or now - reported >= REPORT_EVERY:
                log.warning(
                    "another Itinerary schedules on this database (%s); standing by", holder
                )
                reported = now
            self.clock.wait(stopping, RETRY_EVERY)
        return False

    def keep(self, on_lost: Callable[[Holder], None]) -> None:
        """Renew the lease until this greenlet is killed; `on_lost` if someone else has it."""
        while True:
            self.clock.sleep(RENEW_EVERY)
            try:
                holder = self.take()
            except (pw.PeeweeException, OSError) as exc:
                log.warning("cannot renew the scheduling lease (will retry): %s", exc)
                continue
            if holder is not None:
                on_lost(holder)
                return

    def release(self) -> None:
        """Let a standby take over at once (best effort: expiry frees it anyway)."""
        query = SchedulerLease.update(expires_at=self.clock.now() - timedelta(microseconds=1))
        query = query.where((SchedulerLease.name == NAME) & (SchedulerLease.holder == self.name))
        try:
            self.database.write(query.execute, self.database.writer)
        except (pw.PeeweeException, OSError) as exc:
            log.warning("cannot release the scheduling lease (it expires by itself): %s", exc)
