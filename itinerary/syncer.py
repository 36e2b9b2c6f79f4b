"""The syncer: the only component that writes the database (the seed's "Recorder").

Inbox: `queues.syncer`, bounded, so a full inbox blocks its senders (backpressure,
never a drop). Outbox: `queues.stats` (`SyncerFlushed` after every flush,
`DatabaseError` on failures), written with `put_nowait` so statistics can never
stall a write.

Two greenlets share the work. `run()` reads the inbox and sorts each message into
the batch of its kind (claims, run updates, violations, action runs, webhook
deliveries, job definitions and token uses, stats rows, anomalies; run events are
derived from the claims and run updates written: `itinerary/history.py`); the writer
greenlet flushes a batch when it reaches its size or its age reaches its interval (per
kind, see `Thresholds`), so reading continues while a flush is on the wire. One
flush cycle is one transaction of multi-row statements. Acknowledgements
(`ClaimSlot`, `SaveJob`, `ArchiveJob`, `Flush`) are sent only after the commit.

Nothing is lost: a connection error (server down, connection killed, SQLite
locked) puts the whole cycle back, reports the syncer unready and retries with a
clock-driven backoff. Any other error retries the cycle one row at a time; a row
that still fails alone is poison: set aside with its error, logged, counted, and
its sender (if it waits) gets the exception. The rest goes through.

Run updates are folded in memory against the stored status, updated_at and attempt,
and every batch is written with multi-row statements: `itinerary/batch_sql.py`, which
says why they take the shape they do.

The hub stays free. Statements on the hub are at most `batch_sql.ROWS_PER_STATEMENT`
rows, as encoding one and decoding its answer cannot yield. The writer pauses after every
statement (an answer that has already arrived is no yield), between slices of merging
and of acknowledgements and between flushes, the reader every `YIELD_EVERY` messages;
some of those pauses are a turn of the event loop (`inbox.turn_of_the_loop`), as timers wait
while the callback queue has work. In SQLite's worker thread a pause gives up the GIL.
bench/syncer.py measures throughput and the loop's lateness, and what made it late.

Why one long module: the reader, the writer greenlet and the outage handling share the
batches and their counters; the SQL is apart (batch_sql.py).
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gevent
import peewee as pw
from gevent.event import AsyncResult, Event
from gevent.monkey import get_original
from gevent.queue import Full

from itinerary import audit, jobstore, messages, tokens
from itinerary.batch_sql import Sql, Written
from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.durations import parse_duration
from itinerary.errors import ConfigError
from itinerary.inbox import serve, spawn_linked, turn_of_the_loop
from itinerary.models import Job
from itinerary.webhooks import store as integration_store

log = logging.getLogger(__name__)
_real_sleep = get_original("time", "sleep")  # blocks its thread, whatever patch_all did

# Flush order inside one transaction: a run row exists before its updates, a
# violation before the action runs that point at it.
KINDS = ("jobs", "claims", "runs", "violations", "actions", "webhooks", "stats", "anomalies")
NEEDS = {"runs": ("claims",), "actions": ("violations",)}
KIND_OF: dict[type, str] = {
    messages.SaveJob: "jobs",
    messages.ArchiveJob: "jobs",
    messages.TokenUsed: "jobs",
    messages.SaveIntegration: "jobs",
    messages.DeleteIntegration: "jobs",
    messages.MarkIntegration: "jobs",
    messages.ClaimSlot: "claims",
    messages.RunUpdate: "runs",
    messages.ViolationRecord: "violations",
    messages.ActionRunRecord: "actions",
    messages.WebhookDeliveryRecord: "webhooks",
    messages.StatsRows: "stats",
    messages.AnomalyRecord: "anomalies",
}
INTEGRATION_WRITES = (
    messages.SaveIntegration,
    messages.DeleteIntegration,
    messages.MarkIntegration,
)
GIL_PAUSE = 0.0001  # seconds SQLite's worker thread leaves the GIL free between two slices
REPLY_SLICE = 50  # acknowledgements sent between two pauses (each wakes a waiting sender)
TAKE = 4  # a cycle takes up to this many batch sizes of a kind when a backlog waits
REPORTED = 500  # items per SyncerFlushed whose waiting times are reported
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
POISON_KEPT = 1000
YIELD_EVERY = 50  # messages read from the inbox between two yields to the hub
# The writer's pauses on the hub: every n-th one is a turn of the loop (see _HubPause).
# PyMySQL encodes and decodes in Python, so MariaDB's holds are longer: a turn each time.
LOOP_EVERY = {"postgres": 3, "mysql": 1, "sqlite": 1}


@dataclass(frozen=True)
class Threshold:
    size: int  # flush when this many messages wait ...
    interval: float  # ... or when the oldest has waited this long (seconds)


def thresholds(config: Config) -> dict[str, Threshold]:
    """Per-kind thresholds: the config's batch size and interval, overridden by
    `syncer_thresholds` ("kind=size/interval,..."). Claims and job writes default to
    an interval of 0 (flushed as soon as the writer is free): a run waits on its claim
    and an API call on its job."""
    base = Threshold(config.syncer_batch_size or 1, config.syncer_flush_interval)
    out = {k: base for k in KINDS}
    out["claims"] = Threshold(base.size, 0.0)
    out["jobs"] = Threshold(1, 0.0)
    spec = config.syncer_thresholds or ""
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, _, rest = part.partition("=")
        size, _, interval = rest.partition("/")
        try:
            limit = Threshold(int(size), parse_duration(interval.strip()))
        except ValueError:
            limit = None
        if kind.strip() not in KINDS or limit is None or limit.size < 1:
            raise ConfigError(
                f"--syncer-thresholds: {part!r} is not kind=size/interval with kind one of "
                f"{', '.join(KINDS)}, e.g. runs=500/200ms"
            )
        out[kind.strip()] = limit
    return out


class Batch:
    """Messages of one kind waiting to be written, in arrival order, and when each came.

    Parallel lists rather than an object per message: at tens of thousands of messages a
    second every object that outlives a young collection brings the garbage collector's
    full passes (which hold the hub for tens of milliseconds) sooner.
    """

    __slots__ = ("msgs", "seqs", "queued", "waited")

    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self.seqs: list[int] = []  # arrival order across kinds
        self.queued: list[float] = []  # clock.monotonic() when taken from the inbox
        self.waited: list[float] = []  # seconds in the inbox (sender's `at` to receipt)

    def __len__(self) -> int:
        return len(self.msgs)

    def add(self, msg: Any, seq: int, queued: float, waited: float) -> None:
        self.msgs.append(msg)
        self.seqs.append(seq)
        self.queued.append(queued)
        self.waited.append(waited)

    def split(self, count: int) -> Batch:
        """Take the first `count` messages out."""
        head = Batch()
        for name in self.__slots__:
            column = getattr(self, name)
            setattr(head, name, column[:count])
            del column[:count]
        return head

    def pick(self, indices: Iterable[int]) -> Batch:
        """A new batch of the messages at `indices`."""
        out = Batch()
        for i in indices:
            out.add(self.msgs[i], self.seqs[i], self.queued[i], self.waited[i])
        return out

    def put_back(self, earlier: Batch) -> None:
        """Put messages taken earlier back in front, in their order."""
        self.msgs[:0] = earlier.msgs
        self.seqs[:0] = earlier.seqs
        self.queued[:0] = earlier.queued
        self.waited[:0] = earlier.waited


@dataclass(frozen=True)
class Poison:
    kind: str
    msg: Any
    error: str
    at: datetime


class Outage(Exception):
    """The database cannot be reached: keep everything and retry later."""


def is_connection_error(exc: BaseException) -> bool:
    """Server gone, connection killed, SQLite locked, deadlock: worth retrying as is."""
    return isinstance(exc, pw.OperationalError | pw.InterfaceError)


@dataclass
class _Cycle:
    """What one flush cycle took out of the batches, what is not written yet (put back if
    the database goes away), and what it achieved."""

    taken: dict[str, Batch]
    started: float
    left: dict[str, Batch] = field(init=False)
    done: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.left = {kind: batch for kind, batch in self.taken.items() if batch}


class Syncer:
    """Batches writes from every component into few transactions; see the module doc."""

    def __init__(
        self, inbox: Any, database: Database, clock: Clock, stats_inbox: Any, config: Config
    ) -> None:
        self.inbox = inbox
        self.database = database
        self.clock = clock
        self.stats_inbox = stats_inbox
        self.config = config
        self.thresholds = thresholds(config)
        # SQLite's statements run in a worker thread, the others' on the hub.
        self._pause = _HubPause(LOOP_EVERY[database.driver])
        pause = _give_up_the_gil if database.driver == "sqlite" else self._pause
        self._sql = Sql(database.driver, pause)
        self.batches: dict[str, Batch] = {k: Batch() for k in KINDS}
        self.pending = 0  # messages accepted and not yet written or set aside
        self.max_pending = max(1, config.syncer_inbox_size)
        self._room = Event()  # set by the writer whenever it has finished some items
        self._wake = Event()
        self._flush_waiters: list[AsyncResult] = []
        self._stopping = False
        self._seq = 0
        self._failing_since: datetime | None = None
        self._last_error = ""
        self._failures = 0
        self.in_flight = 0
        self.poisoned: deque[Poison] = deque(maxlen=POISON_KEPT)
        self.poison_count = 0
        self.written = 0

    # --- reading the inbox ------------------------------------------------------------

    def run(self) -> None:
        """Greenlet body: returns after ShutDown (or a shut-down inbox), all written."""
        writer = spawn_linked(self._write_loop)
        try:
            serve(self.inbox, self.handle, YIELD_EVERY)
        finally:
            self._stopping = True
            self._wake.set()
        writer.get()

    def handle(self, msg: Any) -> None:
        """Queue one message in its batch (blocks while too much is pending)."""
        if isinstance(msg, messages.Flush):
            self._flush_waiters.append(msg.reply)
            self._wake.set()
            return
        kind = KIND_OF.get(type(msg))
        if kind is None:
            log.error("syncer: ignoring a message it does not know: %r", msg)
            return
        while self.pending >= self.max_pending:
            self._wake.set()  # the writer must flush: we are at the pending limit
            self._room.clear()
            self._room.wait()
        at = getattr(msg, "at", None) or getattr(msg, "created_at", None)
        inbox_s = max(0.0, (self.clock.now() - at).total_seconds()) if at else 0.0
        batch = self.batches[kind]
        self._seq += 1
        batch.add(msg, self._seq, self.clock.monotonic(), inbox_s)
        self.pending += 1
        limit = self.thresholds[kind]
        if len(batch) == 1 or len(batch) >= limit.size or limit.interval <= 0:
            self._wake.set()

    def ready(self) -> tuple[bool, str]:
        """For /readyz: False with the reason while writes to the database fail."""
        if self._failing_since is None:
            return True, "ok"
        return False, (
            f"database writes failing since {self._failing_since.isoformat()} "
            f"({self._failures} attempts): {self._last_error}"
        )

    # --- deciding when to flush ---------------------------------------------------------

    def _due(self, now: float) -> list[str]:
        nonempty = [k for k in KINDS if self.batches[k]]
        if self._stopping or self._flush_waiters or self.pending >= self.max_pending:
            return nonempty
        due = set()
        for k in nonempty:
            limit, batch = self.thresholds[k], self.batches[k]
            if len(batch) >= limit.size or now - batch.queued[0] >= limit.interval:
                due.add(k)
                due.update(n for n in NEEDS.get(k, ()) if self.batches[n])
        return [k for k in KINDS if k in due]

    def _next_deadline(self, now: float) -> float | None:
        waits = [
            self.batches[k].queued[0] + self.thresholds[k].interval - now
            for k in KINDS
            if self.batches[k]
        ]
        return max(0.0, min(waits)) if waits else None

    def _write_loop(self) -> None:
        while True:
            self._wake.clear()
            kinds = self._due(self.clock.monotonic())
            if kinds:
                self._cycle(kinds)
                turn_of_the_loop()  # the next flush may start at once: the others first
                continue
            if not self.pending:
                self._answer_flushes()
                if self._stopping:
                    return
            self.clock.wait(self._wake, self._next_deadline(self.clock.monotonic()))

    def _answer_flushes(self) -> None:
        waiters, self._flush_waiters = self._flush_waiters, []
        for reply in waiters:
            reply.set(True)

    # --- one flush cycle ----------------------------------------------------------------

    def _take(self, kinds: list[str]) -> dict[str, Batch]:
        """At most TAKE batch sizes per kind, so a backlog (after an outage, or what came
        in while the last flush was on the wire) is written in transactions of bounded
        size; never an update whose claim (or an action run whose violation) arrived
        earlier and is still waiting. While writes fail, one batch size: on a connection
        that keeps dropping, a shorter transaction has a better chance to commit."""
        taken = {}
        take = 1 if self._failing_since is not None else TAKE
        for kind in kinds:
            batch = self.batches[kind]
            count = min(len(batch), self.thresholds[kind].size * take)
            for need in NEEDS.get(kind, ()):
                if self.batches[need]:
                    first_left = self.batches[need].seqs[0]
                    count = min(count, bisect.bisect_left(batch.seqs, first_left))
            taken[kind] = batch.split(count)
        return taken

    def _cycle(self, kinds: list[str]) -> None:
        cycle = _Cycle(self._take(kinds), self.clock.monotonic())
        self.in_flight = sum(len(v) for v in cycle.taken.values())
        try:
            self._write_jobs(cycle)
            self._write_together(cycle)
        except Outage as exc:
            self._put_back(cycle)
            self._report(cycle)
            self._outage(exc.__cause__ or exc)
            return
        finally:
            self.in_flight = 0
        self._report(cycle)
        if self._failing_since is not None:
            log.info("syncer: database writes work again after %d failures", self._failures)
        self._failing_since, self._failures = None, 0

    def _write_jobs(self, cycle: _Cycle) -> None:
        """Job definitions: one transaction each, so one clash fails only its own request."""
        batch = cycle.left.get("jobs")
        if batch is None:
            return
        for n, msg in enumerate(batch.msgs):
            try:
                result = self._transaction(self._write_job, msg)
            except Outage:
                cycle.left["jobs"] = batch.pick(range(n, len(batch)))
                raise
            except (jobstore.Conflict, integration_store.Conflict) as exc:
                msg.reply.set_exception(exc)
            except Exception as exc:
                self._set_aside("jobs", msg, exc)
            else:
                self.written += 1
                msg.reply.set(result)
            self._finished("jobs", cycle, 1)
        del cycle.left["jobs"]

    def _write_together(self, cycle: _Cycle) -> None:
        rest = {k: batch.msgs for k, batch in cycle.left.items() if k != "jobs"}
        if not rest:
            return
        try:
            result = self._transaction(self._write_batches, rest)
        except Outage:
            raise
        except Exception as exc:
            log.warning("syncer: a batch failed (%s); retrying it row by row", exc)
            self._row_by_row(cycle)
            return
        self._settle(rest, result)
        for kind, msgs in rest.items():
            self._finished(kind, cycle, len(msgs))
            del cycle.left[kind]

    def _row_by_row(self, cycle: _Cycle) -> None:
        for kind in KINDS:
            batch = cycle.left.get(kind)
            if kind == "jobs" or batch is None:
                continue
            done: set[int] = set()
            for unit in _units(kind, batch.msgs):
                msgs = [batch.msgs[i] for i in unit]
                try:
                    result = self._transaction(self._write_batches, {kind: msgs})
                except Outage:
                    cycle.left[kind] = batch.pick(i for i in range(len(batch)) if i not in done)
                    raise
                except Exception as exc:
                    for msg in msgs:
                        self._set_aside(kind, msg, exc)
                else:
                    self._settle({kind: msgs}, result)
                done.update(unit)
                self._finished(kind, cycle, len(unit))
            del cycle.left[kind]

    def _transaction(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(writer, *args)` in one transaction; a connection error becomes Outage."""

        def work() -> Any:
            with self.database.writer.atomic():
                return fn(self.database.writer, *args)

        try:
            return self.database.write(work)
        except Exception as exc:
            if is_connection_error(exc):
                raise Outage(str(exc)) from exc
            raise

    def _settle(self, written: dict[str, list[Any]], result: Written) -> None:
        """After a commit: answer the senders; updates for a run that has no row are poison."""
        for n, (reply, value) in enumerate(result.replies, 1):
            reply.set(value)
            if n % REPLY_SLICE == 0:
                self._pause()
        for kind, msgs in written.items():
            self.written += len(msgs)
            if kind == "runs" and result.orphans:
                for msg in msgs:
                    if msg.run_id in result.orphans:
                        self.written -= 1
                        self._set_aside(kind, msg, LookupError(f"no run {msg.run_id!r}"))

    def _finished(self, kind: str, cycle: _Cycle, count: int) -> None:
        cycle.done[kind] = cycle.done.get(kind, 0) + count
        self.pending -= count
        self._room.set()

    def _set_aside(self, kind: str, msg: Any, exc: BaseException) -> None:
        """A poison row: keep it with its error, tell its sender, let the rest go on."""
        self.poison_count += 1
        self.poisoned.append(Poison(kind, msg, f"{type(exc).__name__}: {exc}", self._now()))
        log.error("syncer: setting aside a %s row that cannot be written: %s: %r", kind, exc, msg)
        reply = getattr(msg, "reply", None)
        if reply is not None:
            reply.set_exception(exc)
        self._send_stats(messages.DatabaseError(self._now(), "syncer", f"poison {kind} row: {exc}"))

    def _put_back(self, cycle: _Cycle) -> None:
        for kind, batch in cycle.left.items():
            self.batches[kind].put_back(batch)
            cycle.failed[kind] = len(batch)

    def _outage(self, exc: BaseException) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}".strip()
        if self._failing_since is None:
            self._failing_since = self._now()
            log.error("syncer: database writes failing, keeping %d rows: %s", self.pending, exc)
        self._send_stats(messages.DatabaseError(self._now(), "syncer", self._last_error))
        self.clock.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1)))

    def _report(self, cycle: _Cycle) -> None:
        duration = self.clock.monotonic() - cycle.started
        for kind, batch in cycle.taken.items():
            done, failed = cycle.done.get(kind, 0), cycle.failed.get(kind, 0)
            if not done and not failed:
                continue
            waited = tuple(cycle.started - queued for queued in batch.queued[:REPORTED])
            self._send_stats(
                messages.SyncerFlushed(
                    at=self._now(),
                    kind=kind,
                    rows=done or failed,
                    ok=not failed,
                    duration_s=duration,
                    queued=self.pending,
                    inbox_length=self.inbox.qsize(),
                    in_flight=done + failed,
                    time_in_queue_s=waited,
                    time_in_inbox_s=tuple(batch.waited[:REPORTED]),
                )
            )

    def _send_stats(self, msg: Any) -> None:
        if self.stats_inbox is None:
            return
        try:
            self.stats_inbox.put_nowait(msg)
        except Full:
            log.debug("syncer: stats inbox full, dropping %s", type(msg).__name__)

    def _now(self) -> datetime:
        return self.clock.now()

    # --- the SQL (these run inside `Database.write`, maybe in a worker thread) ----------

    def _write_job(self, writer: pw.Database, msg: Any) -> Any:
        if isinstance(msg, messages.ArchiveJob):
            archived = jobstore.archive_job(writer, msg.job_id, msg.at)
            if archived:
                audit.write(writer, msg.job_id, msg.audit, msg.at)
            return archived
        if isinstance(msg, messages.TokenUsed):
            return tokens.touch(writer, msg.token_hash, msg.at)
        if isinstance(msg, INTEGRATION_WRITES):
            return integration_store.write(writer, msg)
        if msg.expected_updated_at is not None and msg.job.id is not None:
            stored = Job.select(Job.updated_at).where(Job.id == msg.job.id).bind(writer).first()
            if stored is not None and stored.updated_at != msg.expected_updated_at:
                raise jobstore.Conflict(
                    f"job {msg.job.id} was changed at {stored.updated_at.isoformat()}; "
                    "reload it and try again"
                )
        stored = jobstore.save_job(writer, msg.job, msg.at)
        audit.write(writer, stored.id, msg.audit, msg.at)  # type: ignore[arg-type]
        return stored

    def _write_batches(self, writer: pw.Database, batches: dict[str, list[Any]]) -> Written:
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]  # not in peewee's stubs
            out = Written(self._sql, writer.connection().cursor())
            for kind in KINDS:
                msgs = batches.get(kind)
                if msgs:
                    getattr(out, f"write_{kind}")(msgs)
        return out


def _units(kind: str, msgs: list[Any]) -> Iterable[list[int]]:
    """Row-by-row retry units (indices into `msgs`): one message, or all the updates of
    one run together."""
    if kind != "runs":
        return ([i] for i in range(len(msgs)))
    by_run: dict[str, list[int]] = {}
    for i, msg in enumerate(msgs):
        by_run.setdefault(msg.run_id, []).append(i)
    return by_run.values()


class _HubPause:
    """The writer's pause on the hub: a cheap sleep(0), and every `every`-th time a turn
    of the loop. Measured with bench/syncer.py: sleep(0) alone left the loop's p99 at
    15-20 ms (MariaDB at 10,000 messages/s); a turn every time brought it to 5-6.5 ms for
    a sixth of MariaDB's top rate and a fifth of PostgreSQL's; every third, PostgreSQL's
    p99 at its top rate went from 14 to 7 ms for about 6% of that rate."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        if self.count % self.every:
            gevent.sleep(0)
        else:
            turn_of_the_loop()


def _give_up_the_gil() -> None:
    """In SQLite's worker thread: let the hub's thread take the GIL if it waits for it.

    The worker runs off the hub but holds the GIL while it runs Python (merging), and a
    thread waiting for the GIL gets it only after the switch interval (5 ms) or when the
    holder blocks. A bare release is taken straight back; a short real sleep is not.
    Measured with bench/syncer.py: late loop ticks put down to the GIL fell from about
    30 to about 5 per 8 s at 20,000 messages/s, for about a tenth of SQLite's top rate.
    """
    _real_sleep(GIL_PAUSE)
