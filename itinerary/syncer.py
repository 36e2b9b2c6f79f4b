"""The syncer: the only component that writes the database (the seed's "Recorder").

Inbox: `queues.syncer`, bounded, so a full inbox blocks its senders (backpressure,
never a drop). Outbox: `queues.stats` (`SyncerFlushed` after every flush,
`DatabaseError` on failures), written with `put_nowait` so statistics can never
stall a write.

Two greenlets share the work. `run()` reads the inbox and sorts each message into
the batch of its kind (claims, run updates, violations, action runs, webhook
deliveries, job definitions, stats rows); the writer greenlet flushes a batch when
it reaches its size or its age reaches its interval (per kind, see `Thresholds`),
so reading continues while a flush is on the wire. One flush cycle is one
transaction of multi-row statements. Acknowledgements (`ClaimSlot`, `SaveJob`,
`ArchiveJob`, `Flush`) are sent only after the commit.

Nothing is lost: a connection error (server down, connection killed, SQLite
locked) puts the whole cycle back, reports the syncer unready and retries with a
clock-driven backoff. Any other error retries the cycle one row at a time; a row
that still fails alone is poison: set aside with its error, logged, counted, and
its sender (if it waits) gets the exception. The rest goes through.

Run updates are merged in memory against the rows read in the same transaction
(`merge_update`), then written back with one upsert per batch: a run never moves
out of a terminal state, never back to an earlier one, and an update older than
the row's `updated_at` is ignored. Measured faster than expressing the rules in
SQL CASE expressions, and the rules stay in one readable Python function.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gevent
import peewee as pw
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from gevent.queue import Full
from gevent.queue import ShutDown as QueueShutDown

from itinerary import jobstore, messages, states
from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.db import (
    ActionRun,
    ConfigError,
    ConstraintViolation,
    Database,
    Job,
    JobRun,
    OrchestratorStats,
    RunAttempt,
    SchedulerStats,
    SyncerStats,
    WebhookDelivery,
    WebhookHandlerStats,
)
from itinerary.durations import parse_duration
from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES

log = logging.getLogger(__name__)

# Flush order inside one transaction: a run row exists before its updates, a
# violation before the action runs that point at it.
KINDS = ("jobs", "claims", "runs", "violations", "actions", "webhooks", "stats")
NEEDS = {"runs": ("claims",), "actions": ("violations",)}
KIND_OF: dict[type, str] = {
    messages.SaveJob: "jobs",
    messages.ArchiveJob: "jobs",
    messages.ClaimSlot: "claims",
    messages.RunUpdate: "runs",
    messages.ViolationRecord: "violations",
    messages.ActionRunRecord: "actions",
    messages.WebhookDeliveryRecord: "webhooks",
    messages.StatsRows: "stats",
}
STATS_MODELS: dict[str, type[pw.Model]] = {
    m._meta.table_name: m
    for m in (SchedulerStats, OrchestratorStats, SyncerStats, WebhookHandlerStats)
}
RUN_FIELDS = (
    "status",
    "attempt",
    "reason",
    "error",
    "started_at",
    "completed_at",
    "exit_code",
    "behind_schedule",
    "executor",
    "handle",
)
ATTEMPT_FIELDS = ("started_at", "completed_at", "exit_code", "error", "executor", "handle")
CHUNK = 500  # rows per IN (...) list: well below every dialect's parameter limit
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
POISON_KEPT = 1000
YIELD_EVERY = 50  # messages read from the inbox between two yields to the hub


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


@dataclass
class Item:
    msg: Any
    seq: int  # arrival order across kinds
    queued_at: float  # clock.monotonic() when the syncer took it from its inbox
    inbox_s: float  # how long it sat in the inbox (sender's `at` to receipt)


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
    """What one flush cycle took out of the batches, and what it achieved."""

    taken: dict[str, list[Item]]
    started: float
    done: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


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
        self.batches: dict[str, list[Item]] = {k: [] for k in KINDS}
        self.pending = 0  # messages accepted and not yet written or set aside
        self.max_pending = max(1, config.syncer_inbox_size)
        self._room = Semaphore(self.max_pending)
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
        writer = gevent.spawn(self._write_loop)
        me = gevent.getcurrent()
        writer.link_exception(lambda g: me.kill(g.exception, block=False))
        try:
            for n in itertools.count(1):
                try:
                    msg = self.inbox.get()
                except QueueShutDown:
                    break
                if isinstance(msg, messages.ShutDown):
                    break
                self.handle(msg)
                if n % YIELD_EVERY == 0:
                    # get() does not yield while the inbox has items: draining a full
                    # inbox in one go would hold the hub for tens of milliseconds.
                    gevent.sleep(0)
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
        if self._room.locked():
            self._wake.set()  # the writer must flush: we are at the pending limit
        self._room.acquire()
        at = getattr(msg, "at", None) or getattr(msg, "created_at", None)
        inbox_s = max(0.0, (self.clock.now() - at).total_seconds()) if at else 0.0
        batch = self.batches[kind]
        self._seq += 1
        batch.append(Item(msg, self._seq, self.clock.monotonic(), inbox_s))
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
            if len(batch) >= limit.size or now - batch[0].queued_at >= limit.interval:
                due.add(k)
                due.update(n for n in NEEDS.get(k, ()) if self.batches[n])
        return [k for k in KINDS if k in due]

    def _next_deadline(self, now: float) -> float | None:
        waits = [
            self.batches[k][0].queued_at + self.thresholds[k].interval - now
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

    def _take(self, kinds: list[str]) -> dict[str, list[Item]]:
        """At most one batch size per kind, so a backlog (after an outage) is written in
        transactions of bounded size; never an update whose claim (or an action run whose
        violation) arrived earlier and is still waiting."""
        taken = {}
        for kind in kinds:
            batch = self.batches[kind]
            count = min(len(batch), self.thresholds[kind].size)
            for need in NEEDS.get(kind, ()):
                if self.batches[need]:
                    first_left = self.batches[need][0].seq
                    count = min(count, bisect.bisect_left([i.seq for i in batch], first_left))
            taken[kind], self.batches[kind] = batch[:count], batch[count:]
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
        items = cycle.taken.get("jobs", [])
        while items:
            item = items[0]
            try:
                result = self._transaction(self._write_job, item.msg)
            except (jobstore.Conflict, Outage) as exc:
                if isinstance(exc, Outage):
                    raise
                item.msg.reply.set_exception(exc)
            except Exception as exc:
                self._set_aside("jobs", item, exc)
            else:
                self.written += 1
                item.msg.reply.set(result)
            items.pop(0)
            self._finished("jobs", cycle, 1)

    def _write_together(self, cycle: _Cycle) -> None:
        rest = {k: v for k, v in cycle.taken.items() if v and k != "jobs"}
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
        self._settle(kind_items=rest, result=result)
        for kind, items in rest.items():
            self._finished(kind, cycle, len(items))
            items.clear()

    def _row_by_row(self, cycle: _Cycle) -> None:
        for kind in KINDS:
            items = cycle.taken.get(kind)
            if kind == "jobs" or not items:
                continue
            for unit in _units(kind, list(items)):
                try:
                    result = self._transaction(self._write_batches, {kind: unit})
                except Outage:
                    raise
                except Exception as exc:
                    for item in unit:
                        self._set_aside(kind, item, exc)
                else:
                    self._settle({kind: unit}, result)
                for item in unit:
                    items.remove(item)
                self._finished(kind, cycle, len(unit))

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

    def _settle(self, kind_items: dict[str, list[Item]], result: _Written) -> None:
        """After a commit: answer the senders; updates for a run that has no row are poison."""
        for reply, value in result.replies:
            reply.set(value)
        for kind, items in kind_items.items():
            for item in items:
                if kind == "runs" and item.msg.run_id in result.orphans:
                    self._set_aside(kind, item, LookupError(f"no run {item.msg.run_id!r}"))
                else:
                    self.written += 1

    def _finished(self, kind: str, cycle: _Cycle, count: int) -> None:
        cycle.done[kind] = cycle.done.get(kind, 0) + count
        self.pending -= count
        for _ in range(count):
            self._room.release()

    def _set_aside(self, kind: str, item: Item, exc: BaseException) -> None:
        """A poison row: keep it with its error, tell its sender, let the rest go on."""
        self.poison_count += 1
        self.poisoned.append(Poison(kind, item.msg, f"{type(exc).__name__}: {exc}", self._now()))
        log.error(
            "syncer: setting aside a %s row that cannot be written: %s: %r", kind, exc, item.msg
        )
        reply = getattr(item.msg, "reply", None)
        if reply is not None:
            reply.set_exception(exc)
        self._send_stats(messages.DatabaseError(self._now(), "syncer", f"poison {kind} row: {exc}"))

    def _put_back(self, cycle: _Cycle) -> None:
        for kind, items in cycle.taken.items():
            if items:
                self.batches[kind][:0] = items
                cycle.failed[kind] = len(items)

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
        for kind, items in cycle.taken.items():
            done, failed = cycle.done.get(kind, 0), cycle.failed.get(kind, 0)
            if not done and not failed:
                continue
            waited = tuple(cycle.started - i.queued_at for i in items[:CHUNK])
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
                    time_in_inbox_s=tuple(i.inbox_s for i in items[:CHUNK]),
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
            return jobstore.archive_job(writer, msg.job_id, msg.at)
        if msg.expected_updated_at is not None and msg.job.id is not None:
            stored = Job.select(Job.updated_at).where(Job.id == msg.job.id).bind(writer).first()
            if stored is not None and stored.updated_at != msg.expected_updated_at:
                raise jobstore.Conflict(
                    f"job {msg.job.id} was changed at {stored.updated_at.isoformat()}; "
                    "reload it and try again"
                )
        return jobstore.save_job(writer, msg.job, msg.at)

    def _write_batches(self, writer: pw.Database, batches: dict[str, list[Item]]) -> _Written:
        out = _Written(self.database.driver)
        for kind in KINDS:
            items = batches.get(kind)
            if items:
                getattr(out, f"write_{kind}")(writer, [i.msg for i in items])
        return out


def _units(kind: str, items: list[Item]) -> Iterable[list[Item]]:
    """Row-by-row retry units: one message, or all the updates of one run together."""
    if kind != "runs":
        return ([i] for i in items)
    by_run: dict[str, list[Item]] = {}
    for i in items:
        by_run.setdefault(i.msg.run_id, []).append(i)
    return by_run.values()


def merge_update(row: dict[str, Any], update: messages.RunUpdate) -> bool:
    """Apply `update` to a job_run row dict in place; False if the rules refuse it."""
    if update.at < row["updated_at"]:
        return False
    if update.status is not None and not states.may_move(row["status"], update.status):
        return False
    for name in RUN_FIELDS:
        value = getattr(update, name)
        if value is not None:
            row[name] = value
    if row["status"] in states.TERMINAL:
        row["success"] = row["status"] == states.SUCCEEDED
    row["updated_at"] = update.at
    return True


def merge_attempt(row: dict[str, Any] | None, run: dict[str, Any], u: messages.RunUpdate) -> dict:
    """The run_attempts row for the update's attempt, created or changed."""
    number = u.attempt or run["attempt"]
    att = dict(row) if row else {"run_id": run["run_id"], "attempt": number, "status": None}
    for name in ATTEMPT_FIELDS:
        value = getattr(u, name)
        if value is not None:
            att[name] = value
    status = u.attempt_status or u.status or att["status"] or run["status"]
    if att["status"] is None or states.may_move(att["status"], status):
        att["status"] = status
    return att


def _touches_attempt(u: messages.RunUpdate) -> bool:
    return any(
        getattr(u, n) is not None
        for n in ("attempt", "attempt_status", "started_at", "completed_at", "exit_code", "handle")
    )


def _default(f: pw.Field) -> Any:
    return f.default() if callable(f.default) else f.default


def _chunks(seq: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    return (seq[i : i + size] for i in range(0, len(seq), size))


class _Written:
    """One transaction's statements; collects the replies to send after its commit.

    Statements are plain SQL run on the writer's cursor: peewee's query builder cost
    about ten times the database's own time for 500-row upserts (measured with
    bench/syncer.py), and it ran on the hub. Multi-row per dialect: psycopg2's
    `execute_values`, PyMySQL's `executemany` (rewritten into one multi-row INSERT),
    SQLite's `executemany` of one prepared statement.
    """

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self.replies: list[tuple[AsyncResult, Any]] = []
        self.orphans: set[str] = set()
        self.q = "`" if driver == "mysql" else '"'
        self.param = "?" if driver == "sqlite" else "%s"

    def _name(self, name: str) -> str:
        return f"{self.q}{name}{self.q}"

    def _insert(self, w: Any, model: type[pw.Model], rows: list[dict], conflict: str) -> None:
        fields = [model._meta.fields[name] for name in rows[0]]
        values = [tuple(f.db_value(row[f.name]) for f in fields) for row in rows]
        cols = ", ".join(self._name(f.column_name) for f in fields)
        head = f"INSERT INTO {self._name(model._meta.table_name)} ({cols}) VALUES "
        with pw.__exception_wrapper__:
            cursor = w.connection().cursor()
            if self.driver == "postgres":
                from psycopg2.extras import execute_values

                execute_values(cursor, f"{head}%s {conflict}", values, page_size=len(values))
            else:
                marks = ", ".join([self.param] * len(fields))
                cursor.executemany(f"{head}({marks}) {conflict}", values)

    def _insert_new(self, w: Any, model: type[pw.Model], rows: list[dict]) -> None:
        """Insert rows whose key may exist already (a retry): those are left as they are."""
        if self.driver == "mysql":
            # INSERT IGNORE would also swallow foreign-key and data errors.
            pk = self._name(model._meta.get_primary_keys()[0].column_name)
            self._insert(w, model, rows, f"ON DUPLICATE KEY UPDATE {pk} = {pk}")
        else:
            self._insert(w, model, rows, "ON CONFLICT DO NOTHING")

    def _upsert(self, w: Any, model: type[pw.Model], rows: list[dict]) -> None:
        keys = [f.column_name for f in model._meta.get_primary_keys()]
        others = [self._name(name) for name in rows[0] if name not in keys]
        if self.driver == "mysql":
            sets = ", ".join(f"{c} = VALUES({c})" for c in others)
            self._insert(w, model, rows, f"ON DUPLICATE KEY UPDATE {sets}")
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in others)
            target = ", ".join(self._name(k) for k in keys)
            self._insert(w, model, rows, f"ON CONFLICT ({target}) DO UPDATE SET {sets}")

    def _select(self, w: Any, model: type[pw.Model], key: str, ids: list[Any]) -> list[dict]:
        """Rows whose `key` is in `ids`, locked for this transaction where the dialect can."""
        fields = model._meta.sorted_fields
        cols = ", ".join(self._name(f.column_name) for f in fields)
        lock = "" if self.driver == "sqlite" else " FOR UPDATE"
        out = []
        with pw.__exception_wrapper__:
            cursor = w.connection().cursor()
            for chunk in _chunks(ids):
                marks = ", ".join([self.param] * len(chunk))
                cursor.execute(
                    f"SELECT {cols} FROM {self._name(model._meta.table_name)} "
                    f"WHERE {self._name(key)} IN ({marks}){lock}",
                    chunk,
                )
                out.extend(
                    {f.name: f.python_value(v) for f, v in zip(fields, row, strict=True)}
                    for row in cursor.fetchall()
                )
        return out

    def write_claims(self, w: Any, claims: list[messages.ClaimSlot]) -> None:
        rows = [
            {
                "job_id": c.job_id,
                "scheduled_at": c.scheduled_at,
                "run_id": c.run_id,
                "trigger": c.trigger,
                "status": c.status,
                "success": (c.status == states.SUCCEEDED) if c.status in states.TERMINAL else None,
                "reason": c.reason,
                "args": None if c.args is None else list(c.args),
                "parent_run_id": c.parent_run_id,
                "created_at": c.at,
                "updated_at": c.at,
            }
            for c in claims
        ]
        self._insert_new(w, JobRun, rows)
        # Ours if the slot's row carries our run id: a retried claim that committed
        # before its connection died still answers True.
        ours = {r["run_id"] for r in self._select(w, JobRun, "run_id", [c.run_id for c in claims])}
        self.replies.extend((c.reply, c.run_id in ours) for c in claims)

    def write_runs(self, w: Any, updates: list[messages.RunUpdate]) -> None:
        ids = list(dict.fromkeys(u.run_id for u in updates))
        rows = {r["run_id"]: r for r in self._select(w, JobRun, "run_id", ids)}
        attempt_ids = list(dict.fromkeys(u.run_id for u in updates if _touches_attempt(u)))
        attempts = {
            (a["run_id"], a["attempt"]): a
            for a in self._select(w, RunAttempt, "run_id", attempt_ids)
        }
        changed: dict[str, dict[str, Any]] = {}
        changed_attempts: dict[tuple[str, int], dict[str, Any]] = {}
        for u in updates:
            row = rows.get(u.run_id)
            if row is None:
                self.orphans.add(u.run_id)
                continue
            if not merge_update(row, u):
                continue
            changed[u.run_id] = row
            if _touches_attempt(u):
                key = (u.run_id, u.attempt or row["attempt"])
                attempts[key] = changed_attempts[key] = merge_attempt(attempts.get(key), row, u)
        if changed:
            self._upsert(w, JobRun, list(changed.values()))
        if changed_attempts:
            full = [
                {f.name: a.get(f.name) for f in RunAttempt._meta.sorted_fields}
                for a in changed_attempts.values()
            ]
            self._upsert(w, RunAttempt, full)

    def write_violations(self, w: Any, records: list[messages.ViolationRecord]) -> None:
        rows = [
            {
                "id": r.id,
                "run_id": r.run_id,
                "constraint_type_id": CONSTRAINT_TYPES[r.constraint],
                "violation_time": r.at,
                "details": r.details,
            }
            for r in records
        ]
        self._insert_new(w, ConstraintViolation, rows)

    def write_actions(self, w: Any, records: list[messages.ActionRunRecord]) -> None:
        rows = [
            {
                "id": r.id,
                "run_id": r.run_id,
                "action_type_id": ACTION_TYPES[r.action],
                "trigger": r.trigger,
                "constraint_violation_id": r.violation_id,
                "executed_at": r.at,
                "success": r.success,
                "error": r.error,
                "details": r.details,
            }
            for r in records
        ]
        self._insert_new(w, ActionRun, rows)

    def write_webhooks(self, w: Any, records: list[messages.WebhookDeliveryRecord]) -> None:
        rows = [
            {
                "id": r.id,
                "run_id": r.run_id,
                "webhook_type": r.webhook_type,
                "trigger": r.trigger,
                "url": r.url,
                "attempt_count": r.attempt_count,
                "status_code": r.status_code,
                "success": r.success,
                "error": r.error,
                "request_duration": r.request_duration_ms,
                "created_at": r.created_at,
                "delivered_at": r.delivered_at,
            }
            for r in records
        ]
        self._insert_new(w, WebhookDelivery, rows)

    def write_stats(self, w: Any, batches: list[messages.StatsRows]) -> None:
        by_table: dict[str, dict[Any, dict[str, Any]]] = {}
        for b in batches:
            model = STATS_MODELS[b.table]
            keys = [f.name for f in model._meta.get_primary_keys()]
            table = by_table.setdefault(b.table, {})
            for row in b.rows:  # a later row for the same key replaces an earlier one
                table[tuple(row[k] for k in keys)] = row
        for name, rows in by_table.items():
            model = STATS_MODELS[name]
            full = [
                {f.name: row.get(f.name, _default(f)) for f in model._meta.sorted_fields}
                for row in rows.values()
            ]
            self._upsert(w, model, full)
