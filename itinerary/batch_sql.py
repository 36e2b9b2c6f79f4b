"""The syncer's SQL: the statements of one flush cycle, in each dialect.

Only the syncer uses this module, inside its `Database.write` transactions (so maybe in
SQLite's worker thread) on the writer's DB-API cursor; it reads and writes no queue. It
is kept apart from `syncer.py`, which is the component (inbox, batches, flush
scheduling, retries, poison rows, replies, readiness, stats), because the statement
building is a layer of its own, with its own reasons, and together they were past the
house limit on a module's size.

`Written` runs one transaction's statements for the batches of each kind and collects
the replies to send after the commit; `Sql` builds the few statement shapes (multi-row
inserts and upserts, the COALESCE UPDATE, claims with RETURNING) per dialect; `Table`
names the columns written and turns message values into driver values.

Run updates are folded in memory (`Merge`) against the few stored values the rules
need (status, updated_at, attempt), read `FOR UPDATE` in the same transaction: a run
never moves out of a terminal state, never back to an earlier one, and an update older
than the row's `updated_at` is ignored. Each run's folded change is then written with
one multi-row UPDATE per batch whose unchanged columns keep their stored values
(COALESCE), so rows are neither read whole nor converted field by field. Measured faster
than expressing the rules in SQL CASE expressions, and the rules stay in readable Python.

The syncer's `pause` (a yield on the hub, the GIL given up in SQLite's worker thread) is
called after every statement and between slices of merging; see `Sql`.

Why one long module: each statement is written once per dialect and the merge of run
updates must match the statements it feeds; they are read and changed together.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import peewee as pw
from gevent.event import AsyncResult

from itinerary import messages, states
from itinerary.history import Anomaly, RunEvent
from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES
from itinerary.models import (
    ActionRun,
    ConstraintViolation,
    JobRun,
    JSONField,
    OrchestratorStats,
    RunAttempt,
    SchedulerStats,
    SyncerStats,
    UTCDateTimeField,
    WebhookDelivery,
    WebhookHandlerStats,
)
from itinerary.rollup import JobRunHour

STATS_MODELS: dict[str, type[pw.Model]] = {
    m._meta.table_name: m
    for m in (SchedulerStats, OrchestratorStats, SyncerStats, WebhookHandlerStats, JobRunHour)
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
    "trigger",
)
ATTEMPT_FIELDS = ("started_at", "completed_at", "exit_code", "error", "executor", "handle")
# Rows per statement, well below every dialect's parameter limit. On the hub (PostgreSQL,
# MySQL) a statement is encoded and its answer decoded without a yield, and in SQLite's
# worker thread its rows are built holding the GIL: this bounds both.
ROWS_PER_STATEMENT = {"postgres": 100, "mysql": 100, "sqlite": 200}
# Ids per SELECT ... IN (...): psycopg2 decodes the answer in C, so PostgreSQL takes more
# at once (fewer round trips: about 6% more throughput in bench/syncer.py); PyMySQL decodes
# in Python.
IDS_PER_SELECT = {"postgres": 500, "mysql": 100, "sqlite": 200}
MERGE_SLICE = 200  # updates merged between two pauses (a yield, or the GIL given up)


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _naive(value: datetime | None) -> datetime | None:
    """A timestamp as every dialect stores it: naive UTC (db.UTCDateTimeField's rule)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _json(value: Any) -> str | None:
    """The text db.JSONField stores."""
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


PG_TYPES = {"INT": "integer", "BIGINT": "bigint", "BOOL": "boolean", "DATETIME": "timestamp"}


class Table:
    """Some columns of one table, and how to turn message values into driver values.

    Only timestamps (naive UTC) and JSON (text) need converting; the messages' other
    values are already what the drivers take. Cheaper than peewee's per-field db_value.
    """

    def __init__(self, model: type[pw.Model], names: Iterable[str]) -> None:
        self.name = model._meta.table_name
        fields = [model._meta.fields[n] for n in names]
        self.columns = [f.column_name for f in fields]
        self.keys = [f.column_name for f in model._meta.get_primary_keys()]
        self.pg_types = {f.column_name: PG_TYPES.get(f.field_type, "text") for f in fields}
        self._times = [i for i, f in enumerate(fields) if isinstance(f, UTCDateTimeField)]
        self._jsons = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]

    def row(self, values: list[Any]) -> tuple[Any, ...]:
        for i in self._times:
            values[i] = _naive(values[i])
        for i in self._jsons:
            values[i] = _json(values[i])
        return tuple(values)


def _full(model: type[pw.Model]) -> Table:
    return Table(model, [f.name for f in model._meta.sorted_fields])


# An update's values in this order; None means "leave it as it is" (RunUpdate's rule), so
# the statements write COALESCE(new, old) and the merge never needs the stored value.
RUN_VALUES = operator.attrgetter(*RUN_FIELDS)
STATUS = RUN_FIELDS.index("status")
ATTEMPT_OF_RUN = tuple(RUN_FIELDS.index(n) for n in ATTEMPT_FIELDS)
ATTEMPT_STARTED = 1 + ATTEMPT_FIELDS.index("started_at")  # keys of an attempt change
ATTEMPT_COMPLETED = 1 + ATTEMPT_FIELDS.index("completed_at")
TERMINAL = frozenset(states.TERMINAL)
RANK = states.RANK

CLAIMS = Table(
    JobRun,
    (
        "job_id",
        "scheduled_at",
        "run_id",
        "trigger",
        "status",
        "success",
        "reason",
        "args",
        "parent_run_id",
        "created_at",
        "updated_at",
        "overrides",
    ),
)
RUN_CHANGES = Table(JobRun, ("run_id", *RUN_FIELDS, "success", "updated_at"))
RUN_KEEPS = frozenset(RUN_FIELDS) - {"status"} | {"success"}  # COALESCE(new, old)
ATTEMPTS = Table(RunAttempt, ("run_id", "attempt", "status", *ATTEMPT_FIELDS))
RUN_EVENTS = Table(
    RunEvent, ("run_id", "attempt", "scope", "from_status", "status", "at", "reason")
)
VIOLATIONS = Table(
    ConstraintViolation, ("id", "run_id", "constraint_type_id", "violation_time", "details")
)
ACTIONS = Table(
    ActionRun,
    (
        "id",
        "run_id",
        "action_type_id",
        "trigger",
        "constraint_violation_id",
        "executed_at",
        "success",
        "error",
        "details",
    ),
)
WEBHOOKS = Table(
    WebhookDelivery,
    (
        "id",
        "run_id",
        "webhook_type",
        "trigger",
        "url",
        "attempt_count",
        "status_code",
        "success",
        "error",
        "request_duration",
        "created_at",
        "delivered_at",
        "integration",
        "delivery_key",
        "outcome",
        "response",
    ),
)
ANOMALIES = Table(
    Anomaly,
    (
        "id",
        "job_id",
        "run_id",
        "slot_at",
        "kind",
        "detected_at",
        "score",
        "baseline",
        "explanation",
    ),
)
STATS_TABLES = {name: _full(m) for name, m in STATS_MODELS.items()}


def _touches_attempt(u: messages.RunUpdate) -> bool:
    return (
        u.attempt is not None
        or u.attempt_status is not None
        or u.started_at is not None
        or u.completed_at is not None
        or u.exit_code is not None
        or u.handle is not None
        or u.attempt_started_at is not None
        or u.attempt_completed_at is not None
    )


class Merge:
    """Folds a batch of run updates into one change per run and one per attempt.

    It needs only the stored values the rules read (a run's status, updated_at and
    attempt; an attempt's status), selected `FOR UPDATE` in the same transaction: a run
    never leaves a terminal state nor moves back, and an update older than the run's
    last applied one is ignored. Later values replace earlier ones, None changes nothing.
    Tuples and dicts of plain values, which the garbage collector does not track.
    """

    def __init__(
        self, stored: dict[str, tuple[str, datetime, int]], attempts: dict[tuple[str, int], str]
    ) -> None:
        self.stored = stored  # run_id -> (status, updated_at (naive UTC), attempt)
        self.attempts = attempts  # (run_id, attempt) -> stored status
        self.runs: dict[str, dict[int, Any]] = {}  # run_id -> {RUN_FIELDS index: value}
        # (run_id, attempt) -> {0: status, n: the value of ATTEMPT_FIELDS[n - 1]}
        self.attempt_changes: dict[tuple[str, int], dict[int, Any]] = {}
        self.orphans: set[str] = set()
        # RUN_EVENTS rows: every state change applied, of the run and of its attempts
        self.events: list[tuple[Any, ...]] = []

    def add(self, u: messages.RunUpdate) -> None:
        run = self.stored.get(u.run_id)
        if run is None:
            self.orphans.add(u.run_id)
            return
        status, updated_at, attempt = run
        at = cast(datetime, _naive(u.at))  # a RunUpdate always has its time
        if at < updated_at:
            return
        before = status
        if u.status is not None:
            if status in TERMINAL or RANK[u.status] < RANK[status]:
                return
            status = u.status
        if u.attempt is not None:
            attempt = u.attempt
        self.stored[u.run_id] = (status, at, attempt)
        values = RUN_VALUES(u)
        change = self.runs.get(u.run_id)
        if change is None:
            change = self.runs[u.run_id] = {}
        for i, value in enumerate(values):
            if value is not None:
                change[i] = value
        moved = status != before
        if moved:
            self.events.append((u.run_id, attempt, "run", before, status, at, u.reason))
        if _touches_attempt(u):
            was, now = self._attempt(u, values, status, attempt)
            # The attempt's own change, unless the run's event above says it already.
            if now != was and not (moved and now == status):
                reason = u.error if u.attempt_status else u.reason
                self.events.append((u.run_id, attempt, "attempt", was, now, at, reason))

    def _attempt(
        self, u: messages.RunUpdate, values: tuple[Any, ...], run_status: str, number: int
    ) -> tuple[str | None, str]:
        """Fold `u` into the attempt's change; its status before and after."""
        key = (u.run_id, number)
        change = self.attempt_changes.get(key)
        if change is None:
            change = self.attempt_changes[key] = {0: self.attempts.get(key)}
        for n, i in enumerate(ATTEMPT_OF_RUN, 1):
            if values[i] is not None:
                change[n] = values[i]
        if u.attempt_started_at is not None:
            change[ATTEMPT_STARTED] = u.attempt_started_at
        if u.attempt_completed_at is not None:
            change[ATTEMPT_COMPLETED] = u.attempt_completed_at
        old = change[0]
        status = u.attempt_status or u.status or old or run_status
        if old is None or (old not in TERMINAL and RANK[status] >= RANK[old]):
            change[0] = status
        return old, change[0]

    def run_rows(self) -> Iterator[tuple[Any, ...]]:
        """RUN_CHANGES rows: the run's final status, success when it is terminal."""
        for run_id, change in self.runs.items():
            status, updated_at, _ = self.stored[run_id]
            values = [change.get(i) for i in range(len(RUN_FIELDS))]
            values[STATUS] = status
            success = (status == states.SUCCEEDED) if status in TERMINAL else None
            yield RUN_CHANGES.row([run_id, *values, success, updated_at])

    def attempt_rows(self) -> Iterator[tuple[Any, ...]]:
        width = 1 + len(ATTEMPT_FIELDS)
        for (run_id, number), change in self.attempt_changes.items():
            yield ATTEMPTS.row([run_id, number, *(change.get(i) for i in range(width))])


class Sql:
    """The few statement shapes the syncer needs, in each dialect, on a DB-API cursor.

    Plain SQL: peewee's query builder cost about ten times the database's own time for
    500-row upserts. Multi-row per dialect: PostgreSQL one VALUES list per statement,
    PyMySQL's `executemany` (it rewrites an INSERT into one multi-row statement), SQLite's
    `executemany` of one prepared statement.

    On the hub (PostgreSQL, MySQL) encoding a statement and decoding its answer cannot
    yield, so at most `rows` rows go in one statement; and `pause` (a yield there) is
    called after each one: waiting for the answer is no yield when it has already arrived,
    which is often the case, so a flush would otherwise run many statements in one go.
    In SQLite's worker thread `pause` gives the GIL up for a moment instead.
    """

    def __init__(self, driver: str, pause: Callable[[], None]) -> None:
        self.driver = driver
        self.pause = pause
        self.rows = ROWS_PER_STATEMENT[driver]
        self.ids = IDS_PER_SELECT[driver]
        self.mark = "?" if driver == "sqlite" else "%s"
        self._q = "`" if driver == "mysql" else '"'

    def name(self, name: str) -> str:
        return f"{self._q}{name}{self._q}"

    def timestamp(self, value: Any) -> datetime:
        """A stored timestamp as naive UTC: SQLite hands back the text it keeps."""
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    def select(
        self, cursor: Any, table: str, columns: Iterable[str], key: str, ids: list[Any]
    ) -> list[tuple[Any, ...]]:
        """Rows whose `key` is in `ids`, locked for this transaction where the dialect can."""
        cols = ", ".join(self.name(c) for c in columns)
        lock = "" if self.driver == "sqlite" else " FOR UPDATE"
        out: list[tuple[Any, ...]] = []
        for chunk in _batches(ids, self.ids):
            marks = ", ".join([self.mark] * len(chunk))
            cursor.execute(
                f"SELECT {cols} FROM {self.name(table)} WHERE {self.name(key)} IN ({marks}){lock}",
                chunk,
            )
            out.extend(cursor.fetchall())
            self.pause()
        return out

    def insert(
        self, cursor: Any, table: Table, rows: Iterable[tuple[Any, ...]], tail: str, back: str = ""
    ) -> list[tuple[Any, ...]]:
        """INSERT `rows` ... `tail`; PostgreSQL also returns column `back` of each new row."""
        head = f"INSERT INTO {self.name(table.name)} ({', '.join(map(self.name, table.columns))})"
        one = f"({', '.join([self.mark] * len(table.columns))})"
        returning = f" RETURNING {self.name(back)}" if back and self.driver == "postgres" else ""
        out: list[tuple[Any, ...]] = []
        for chunk in _batches(rows, self.rows):
            if self.driver == "postgres":
                values = ", ".join([one] * len(chunk))
                cursor.execute(f"{head} VALUES {values} {tail}{returning}", _flat(chunk))
                if returning:
                    out.extend(cursor.fetchall())
            else:
                cursor.executemany(f"{head} VALUES {one} {tail}", chunk)
            self.pause()
        return out

    def ignore_existing(self, table: Table) -> str:
        """INSERT tail: a row whose key exists already (a retry) is left as it is."""
        if self.driver == "mysql":
            # INSERT IGNORE would also swallow foreign-key and data errors.
            pk = self.name(table.keys[0])
            return f"ON DUPLICATE KEY UPDATE {pk} = {pk}"
        return "ON CONFLICT DO NOTHING"

    def replace_existing(self, table: Table, keep: Collection[str] = ()) -> str:
        """INSERT tail: an existing row takes the new values, but keeps its own value of a
        column in `keep` where the new one is NULL."""
        others = [c for c in table.columns if c not in table.keys]
        if self.driver == "mysql":
            sets = (self._set(c, f"VALUES({self.name(c)})", self.name(c), keep) for c in others)
            return f"ON DUPLICATE KEY UPDATE {', '.join(sets)}"
        old = self.name(table.name)
        sets = (
            self._set(c, f"excluded.{self.name(c)}", f"{old}.{self.name(c)}", keep) for c in others
        )
        target = ", ".join(map(self.name, table.keys))
        return f"ON CONFLICT ({target}) DO UPDATE SET {', '.join(sets)}"

    def _set(self, column: str, new: str, old: str, keep: Collection[str]) -> str:
        return f"{self.name(column)} = " + (f"COALESCE({new}, {old})" if column in keep else new)

    def update(
        self, cursor: Any, table: Table, rows: Iterable[tuple[Any, ...]], keep: Collection[str]
    ) -> None:
        """UPDATE the rows whose first column (a unique key) matches, setting the others;
        a column in `keep` keeps its value where the new one is NULL."""
        key, *cols = table.columns
        t, k = self.name(table.name), self.name(key)
        if self.driver == "sqlite":
            sets = ", ".join(self._set(c, "?", self.name(c), keep) for c in cols)
            cursor.executemany(
                f"UPDATE {t} SET {sets} WHERE {k} = ?", (row[1:] + row[:1] for row in rows)
            )
            self.pause()
            return
        for chunk in _batches(rows, self.rows):
            if self.driver == "postgres":
                # VALUES columns of only NULLs are text: cast each to the column's type.
                sets = ", ".join(
                    self._set(
                        c, f"v.{self.name(c)}::{table.pg_types[c]}", f"t.{self.name(c)}", keep
                    )
                    for c in cols
                )
                values = ", ".join([f"({', '.join(['%s'] * len(table.columns))})"] * len(chunk))
                names = ", ".join(map(self.name, table.columns))
                sql = f"UPDATE {t} AS t SET {sets} FROM (VALUES {values}) AS v ({names}) "
                sql += f"WHERE t.{k} = v.{k}"
            else:
                # MariaDB has no column names for a VALUES list: a UNION of SELECTs instead.
                first = ", ".join(f"%s AS {self.name(c)}" for c in table.columns)
                rest = ", ".join(["%s"] * len(table.columns))
                derived = " UNION ALL ".join(
                    [f"SELECT {first}"] + [f"SELECT {rest}"] * (len(chunk) - 1)
                )
                sets = ", ".join(
                    f"t.{self._set(c, f'v.{self.name(c)}', f't.{self.name(c)}', keep)}"
                    for c in cols
                )
                sql = f"UPDATE {t} AS t JOIN ({derived}) AS v ON t.{k} = v.{k} SET {sets}"
            cursor.execute(sql, _flat(chunk))
            self.pause()


def _flat(rows: list[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


class Written:
    """One transaction's statements; collects the replies to send after its commit."""

    def __init__(self, sql: Sql, cursor: Any) -> None:
        self.sql = sql
        self.cursor = cursor
        self.replies: list[tuple[AsyncResult, Any]] = []
        self.orphans: set[str] = set()

    def write_claims(self, claims: list[messages.ClaimSlot]) -> None:
        rows = (
            CLAIMS.row(
                [
                    c.job_id,
                    c.scheduled_at,
                    c.run_id,
                    c.trigger,
                    c.status,
                    (c.status == states.SUCCEEDED) if c.status in TERMINAL else None,
                    c.reason,
                    None if c.args is None else list(c.args),
                    c.parent_run_id,
                    c.at,
                    c.at,
                    c.overrides or None,
                ]
            )
            for c in claims
        )
        new = self.sql.insert(self.cursor, CLAIMS, rows, self.sql.ignore_existing(CLAIMS), "run_id")
        # Ours if the slot's row carries our run id: a retried claim that committed
        # before its connection died still answers True. PostgreSQL names the rows it
        # inserted; the others (and conflicts there) are looked up.
        ours = {r[0] for r in new}
        unsure = [c.run_id for c in claims if c.run_id not in ours]
        ours.update(
            r[0] for r in self.sql.select(self.cursor, "job_run", ("run_id",), "run_id", unsure)
        )
        self.replies.extend((c.reply, c.run_id in ours) for c in claims)
        # A run's first event. (A retried claim that had committed already gets a second
        # one on SQLite and MySQL, which do not say which rows they inserted:
        # history.events_of drops the repeat.)
        events = [
            RUN_EVENTS.row([c.run_id, 1, "run", None, c.status, c.at, c.reason])
            for c in claims
            if c.run_id in ours
        ]
        if events:
            self.sql.insert(self.cursor, RUN_EVENTS, events, "")

    def write_runs(self, updates: list[messages.RunUpdate]) -> None:
        sql, cursor = self.sql, self.cursor
        ids = list(dict.fromkeys(u.run_id for u in updates))
        columns = ("run_id", "status", "updated_at", "attempt")
        stored = {
            r[0]: (r[1], sql.timestamp(r[2]), r[3])
            for r in sql.select(cursor, "job_run", columns, "run_id", ids)
        }
        touched = list(dict.fromkeys(u.run_id for u in updates if _touches_attempt(u)))
        attempts = {
            (r[0], r[1]): r[2]
            for r in sql.select(
                cursor, "run_attempts", ("run_id", "attempt", "status"), "run_id", touched
            )
        }
        merge = Merge(stored, attempts)
        for n, u in enumerate(updates, 1):
            merge.add(u)
            if n % MERGE_SLICE == 0:
                sql.pause()
        self.orphans |= merge.orphans
        if merge.runs:
            sql.update(cursor, RUN_CHANGES, merge.run_rows(), RUN_KEEPS)
        if merge.attempt_changes:
            tail = sql.replace_existing(ATTEMPTS, keep=ATTEMPT_FIELDS)
            sql.insert(cursor, ATTEMPTS, merge.attempt_rows(), tail)
        if merge.events:
            sql.insert(cursor, RUN_EVENTS, map(RUN_EVENTS.row, map(list, merge.events)), "")

    def _insert_new(self, table: Table, rows: Iterable[list[Any]]) -> None:
        full = (table.row(r) for r in rows)
        self.sql.insert(self.cursor, table, full, self.sql.ignore_existing(table))

    def write_violations(self, records: list[messages.ViolationRecord]) -> None:
        self._insert_new(
            VIOLATIONS,
            ([r.id, r.run_id, CONSTRAINT_TYPES[r.constraint], r.at, r.details] for r in records),
        )

    def write_actions(self, records: list[messages.ActionRunRecord]) -> None:
        """Insert action runs; a later record of the same id (a webhook's outcome after its
        "pending") replaces the row, keeping its violation."""
        latest = {r.id: r for r in records}  # one row per id: a statement may not touch one twice
        self.sql.insert(
            self.cursor,
            ACTIONS,
            (
                ACTIONS.row(r)
                for r in (
                    [
                        r.id,
                        r.run_id,
                        ACTION_TYPES[r.action],
                        r.trigger,
                        r.violation_id,
                        r.at,
                        r.success,
                        r.error,
                        r.details,
                    ]
                    for r in latest.values()
                )
            ),
            self.sql.replace_existing(ACTIONS, keep=("constraint_violation_id",)),
        )

    def write_webhooks(self, records: list[messages.WebhookDeliveryRecord]) -> None:
        self._insert_new(
            WEBHOOKS,
            (
                [
                    r.id,
                    r.run_id,
                    r.webhook_type,
                    r.trigger,
                    r.url,
                    r.attempt_count,
                    r.status_code,
                    r.success,
                    r.error,
                    r.request_duration_ms,
                    r.created_at,
                    r.delivered_at,
                    r.integration,
                    r.delivery_key,
                    r.outcome,
                    r.response,
                ]
                for r in records
            ),
        )

    def write_anomalies(self, records: list[messages.AnomalyRecord]) -> None:
        self._insert_new(
            ANOMALIES,
            (
                [
                    r.id,
                    r.job_id,
                    r.run_id,
                    r.slot_at,
                    r.kind,
                    r.at,
                    r.score,
                    r.baseline,
                    r.explanation,
                ]
                for r in records
            ),
        )

    def write_stats(self, batches: list[messages.StatsRows]) -> None:
        by_table: dict[str, dict[Any, dict[str, Any]]] = {}
        for b in batches:
            keys = [f.name for f in STATS_MODELS[b.table]._meta.get_primary_keys()]
            table = by_table.setdefault(b.table, {})
            for row in b.rows:  # a later row for the same key replaces an earlier one
                table[tuple(row[k] for k in keys)] = row
        for name, rows in by_table.items():
            model, stats = STATS_MODELS[name], STATS_TABLES[name]
            fields = model._meta.sorted_fields
            full = (
                stats.row([row.get(f.name, _default(f)) for f in fields]) for row in rows.values()
            )
            self.sql.insert(self.cursor, stats, full, self.sql.replace_existing(stats))


def _default(f: pw.Field) -> Any:
    return f.default() if callable(f.default) else f.default
