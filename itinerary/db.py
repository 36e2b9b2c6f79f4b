"""Database connections and peewee models for SQLite, PostgreSQL and MySQL/MariaDB.

Two connections kinds (seed: "All connections besides the Recorder connection
should be read only"): `Database.reader` for everyone, `Database.writer` for the
syncer and migrations only. Models are bound to `proxy`, which points at the
reader; the syncer passes the writer explicitly (`query.execute(db.writer)`).

Nothing here may block the gevent hub: psycopg2 gets a wait callback that
yields on the socket, PyMySQL uses monkey-patched sockets, and every SQLite call
runs in a worker thread (`Database.call`). Call the database only through
`Database.call`, which also opens and returns pooled connections around the
work, so no greenlet ever leaks a connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import peewee as pw
from gevent.threadpool import ThreadPool
from playhouse.pool import PooledMySQLDatabase, PooledPostgresqlDatabase

log = logging.getLogger(__name__)
T = TypeVar("T")
DRIVERS = ("sqlite", "postgres", "mysql")
SCHEMES = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


class ConfigError(ValueError):
    """A database setting is wrong; the message says which and why."""


@dataclass(frozen=True)
class DSN:
    driver: str
    database: str  # file path for SQLite
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def redacted(self) -> str:
        """The DSN for logs and messages: never the password."""
        if self.driver == "sqlite":
            return f"sqlite:///{self.database}"
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        port = f":{self.port}" if self.port else ""
        return f"{self.driver}://{auth}{self.host or ''}{port}/{self.database}"


def parse_dsn(dsn: str, driver: str | None = None) -> DSN:
    """Parse `sqlite:///path`, `postgresql://user@host:port/db` or `mysql://u:p@host/db`."""
    if driver is not None and driver not in DRIVERS:
        raise ConfigError(
            f"--db-driver: unknown driver {driver!r}; use one of {', '.join(DRIVERS)}"
        )
    if "://" not in dsn:
        raise ConfigError(
            f"--db-dsn: {dsn!r} is not a DSN; use sqlite:///path/to.db, "
            "postgresql://user@host:5432/db or mysql://user:pass@host:3306/db"
        )
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"--db-dsn: unknown scheme {parts.scheme!r}; use sqlite, postgresql or mysql"
        )
    inferred = SCHEMES[scheme]
    if driver is not None and driver != inferred:
        raise ConfigError(
            f"--db-driver {driver} disagrees with the DSN scheme {parts.scheme!r} ({inferred})"
        )
    if inferred == "sqlite":
        # sqlite:///rel.db -> rel.db ; sqlite:////abs/path.db -> /abs/path.db
        rest = unquote(dsn.split("://", 1)[1].split("?", 1)[0])
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigError("--db-dsn: a SQLite DSN needs a file: sqlite:///itinerary.db")
        return DSN("sqlite", path)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--db-dsn: the port in {dsn!r} is not a number") from None
    name = parts.path.lstrip("/")
    if not parts.hostname or not name or "/" in name:
        raise ConfigError(
            f"--db-dsn: {inferred} DSN needs a host and a database: {inferred}://user@host:port/db"
        )
    options = tuple((k, v[-1]) for k, v in parse_qs(parts.query).items())
    return DSN(
        inferred,
        unquote(name),
        parts.hostname,
        port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
        options,
    )


# --- gevent integration --------------------------------------------------------------------


def _psycopg2_wait(conn: Any) -> None:
    """psycopg2 wait callback: yield to the hub while the socket is not ready."""
    import psycopg2.extensions as ext
    from gevent.socket import wait_read, wait_write

    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        if state == ext.POLL_READ:
            wait_read(conn.fileno())
        elif state == ext.POLL_WRITE:
            wait_write(conn.fileno())
        else:
            raise ext.OperationalError(f"bad state from poll: {state}")


def make_psycopg2_cooperative() -> None:
    import psycopg2.extensions

    psycopg2.extensions.set_wait_callback(_psycopg2_wait)


class ThreadedSqliteDatabase(pw.SqliteDatabase):
    """SQLite whose connections live in worker threads (see `Database.call`)."""


class ReadOnlyMySQL(PooledMySQLDatabase):
    """MySQL has no connect option for it: mark each new connection read-only once."""

    def _initialize_connection(self, conn: Any) -> None:
        if not getattr(conn, "_itinerary_read_only", False):
            with conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
            conn._itinerary_read_only = True


def _open(dsn: DSN, *, read_only: bool, max_connections: int) -> pw.Database:
    if dsn.driver == "sqlite":
        path = dsn.database
        pragmas = {
            "journal_mode": "wal",
            "busy_timeout": 10000,
            "foreign_keys": 1,
            "synchronous": "normal",
        }
        if read_only:
            db = ThreadedSqliteDatabase(
                f"file:{path}?mode=ro",
                uri=True,
                pragmas={"busy_timeout": 10000},
                check_same_thread=False,
            )
        else:
            db = ThreadedSqliteDatabase(path, pragmas=pragmas, check_same_thread=False)
        return db
    common: dict[str, Any] = {
        "host": dsn.host,
        "user": dsn.user,
        "max_connections": max_connections,
        "stale_timeout": 300,
        "timeout": 30,
    }
    if dsn.port:
        common["port"] = dsn.port
    if dsn.password is not None:
        common["password"] = dsn.password
    opts = dict(dsn.options)
    if dsn.driver == "postgres":
        make_psycopg2_cooperative()
        common["connect_timeout"] = int(opts.pop("connect_timeout", 10))
        common.update(opts)
        if read_only:
            common["options"] = "-c default_transaction_read_only=on"
        return PooledPostgresqlDatabase(dsn.database, **common)
    common["connect_timeout"] = int(opts.pop("connect_timeout", 10))
    common["charset"] = "utf8mb4"
    common["init_command"] = "SET time_zone = '+00:00'"
    cls = ReadOnlyMySQL if read_only else PooledMySQLDatabase
    return cls(dsn.database, **common)


class Database:
    """A reader (read-only, pooled) and a writer (the syncer's) for one DSN."""

    def __init__(self, dsn: DSN, *, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.driver = dsn.driver
        # The syncer's, plus the lease's renewals and the commands table's (leader/standby),
        # so a renewal never waits for the syncer's connection (itinerary/lease.py).
        self.writer = _open(dsn, read_only=False, max_connections=4)
        self.reader = _open(dsn, read_only=True, max_connections=pool_size)
        # SQLite: one thread owns the write connection; reads share a small pool.
        self._write_pool = ThreadPool(1) if dsn.driver == "sqlite" else None
        self._read_pool = ThreadPool(pool_size) if dsn.driver == "sqlite" else None

    def call(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """Run `fn(*args)` with a connection open, without blocking the hub."""
        db = self.writer if write else self.reader
        if self.driver == "sqlite":
            pool = self._write_pool if write else self._read_pool
            assert pool is not None
            ok, value = pool.apply(_in_thread, (db, fn, args))
            if not ok:
                raise value
            return value
        if not db.is_closed():  # a nested call on this greenlet: keep using its connection
            return fn(*args)
        with db.connection_context():
            return fn(*args)

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        return self.call(fn, *args)

    def write(self, fn: Callable[..., T], *args: Any) -> T:
        return self.call(fn, *args, write=True)

    def ping(self) -> None:
        """Raise unless both connections answer `SELECT 1`."""
        self.call(lambda: self.writer.execute_sql("SELECT 1").fetchone(), write=True)
        self.call(lambda: self.reader.execute_sql("SELECT 1").fetchone())

    def close(self) -> None:
        for db in (self.reader, self.writer):
            try:
                if isinstance(db, PooledPostgresqlDatabase | PooledMySQLDatabase):
                    db.close_all()
                elif not db.is_closed():
                    db.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing %s", db, exc_info=True)
        for pool in (self._read_pool, self._write_pool):
            if pool is not None:
                pool.kill()


def _in_thread(db: pw.Database, fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """Runs in a worker thread, keeping that thread's connection open across calls.

    Exceptions are handed back as values: gevent would otherwise print each one as a
    crashed worker although the caller handles it.
    """
    try:
        if db.is_closed():
            db.connect(reuse_if_open=True)
        return True, fn(*args)
    except BaseException as exc:  # re-raised in the calling greenlet
        return False, exc


# --- models --------------------------------------------------------------------------------

proxy = pw.DatabaseProxy()


class UTCDateTimeField(pw.DateTimeField):
    """Aware UTC in Python, naive UTC in the database (every dialect the same)."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class JSONField(pw.TextField):
    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        database = proxy
        legacy_table_names = False


class ConstraintType(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField(unique=True)

    class Meta:
        table_name = "constraint_types"


class ActionType(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField(unique=True)

    class Meta:
        table_name = "action_types"


class Job(BaseModel):
    id = pw.BigAutoField()
    name = pw.CharField()
    active_name = pw.CharField(null=True, unique=True)
    description = pw.TextField(default="")
    schedule = pw.CharField(null=True)
    timezone = pw.CharField(default="UTC")
    enabled = pw.BooleanField(default=True)
    paused_reason = pw.TextField(null=True)
    namespace = pw.CharField(default="default")
    images = JSONField(default=list)
    commands = JSONField(default=list)
    args = JSONField(default=list)
    service_accounts = JSONField(default=list)
    env = JSONField(default=dict)
    env_secret = JSONField(null=True)
    resources = JSONField(null=True)
    pod_spec = JSONField(null=True)
    constraints = JSONField(default=dict)  # constraint_type_id (as text) -> config
    manually_runnable = pw.BooleanField(default=True)
    manual_run_modifiable_fields = JSONField(default=list)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    archived_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "job"


class JobTag(BaseModel):
    job_id = pw.BigIntegerField()
    tag = pw.CharField()

    class Meta:
        table_name = "job_tags"
        primary_key = pw.CompositeKey("job_id", "tag")


class JobAction(BaseModel):
    id = pw.BigAutoField()
    job_id = pw.BigIntegerField()
    position = pw.IntegerField(default=0)
    action_type_id = pw.IntegerField()
    trigger = pw.CharField()
    constraint_type_id = pw.IntegerField(null=True)
    config = JSONField(default=dict)

    class Meta:
        table_name = "job_actions"


class JobRun(BaseModel):
    job_id = pw.BigIntegerField()
    scheduled_at = UTCDateTimeField()
    run_id = pw.CharField(unique=True)
    trigger = pw.CharField(default="schedule")
    attempt = pw.IntegerField(default=1)
    status = pw.CharField()
    success = pw.BooleanField(null=True)
    reason = pw.TextField(null=True)
    error = pw.TextField(null=True)
    exit_code = pw.IntegerField(null=True)
    started_at = UTCDateTimeField(null=True)
    completed_at = UTCDateTimeField(null=True)
    behind_schedule = pw.BooleanField(default=False)
    args = JSONField(null=True)
    executor = pw.CharField(null=True)
    handle = JSONField(null=True)
    parent_run_id = pw.CharField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    overrides = JSONField(null=True)  # a manual run's resources/env (migration 010)

    class Meta:
        table_name = "job_run"
        primary_key = pw.CompositeKey("job_id", "scheduled_at")


class RunAttempt(BaseModel):
    run_id = pw.CharField()
    attempt = pw.IntegerField()
    status = pw.CharField()
    started_at = UTCDateTimeField(null=True)
    completed_at = UTCDateTimeField(null=True)
    exit_code = pw.IntegerField(null=True)
    error = pw.TextField(null=True)
    executor = pw.CharField(null=True)
    handle = JSONField(null=True)

    class Meta:
        table_name = "run_attempts"
        primary_key = pw.CompositeKey("run_id", "attempt")


class ConstraintViolation(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    run_id = pw.CharField()
    constraint_type_id = pw.IntegerField()
    violation_time = UTCDateTimeField()
    details = JSONField(default=dict)

    class Meta:
        table_name = "constraint_violations"


class ActionRun(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    run_id = pw.CharField()
    action_type_id = pw.IntegerField()
    trigger = pw.CharField()
    constraint_violation_id = pw.BigIntegerField(null=True)
    executed_at = UTCDateTimeField()
    success = pw.BooleanField()
    error = pw.TextField(null=True)
    details = JSONField(default=dict)

    class Meta:
        table_name = "action_runs"


class _Stats(BaseModel):
    stats_period_id = pw.BigIntegerField(primary_key=True)
    start_time = UTCDateTimeField()
    end_time = UTCDateTimeField()


class SchedulerStats(_Stats):
    iterations = pw.IntegerField(default=0)
    run_jobs = pw.IntegerField(default=0)
    late_jobs = pw.IntegerField(default=0)
    time_passed_run_time = pw.FloatField(default=0)
    missed_jobs = pw.IntegerField(default=0)
    time_passed_grace_period = pw.FloatField(default=0)
    jobs_cancelled = pw.IntegerField(default=0)
    min_inbox_length = pw.IntegerField(default=0)
    max_inbox_length = pw.IntegerField(default=0)
    avg_inbox_length = pw.FloatField(default=0)
    empty_inbox_time = pw.FloatField(default=0)
    avg_time_in_inbox = pw.FloatField(default=0)
    min_time_in_inbox = pw.FloatField(default=0)
    max_time_in_inbox = pw.FloatField(default=0)

    class Meta:
        table_name = "scheduler_stats"


class OrchestratorStats(BaseModel):
    run_id = pw.CharField()
    stats_period_id = pw.BigIntegerField()
    runtime = pw.FloatField(null=True)
    constraints_checked = pw.IntegerField(default=0)
    actions_taken = pw.IntegerField(default=0)

    class Meta:
        table_name = "orchestrator_stats"
        primary_key = pw.CompositeKey("run_id", "stats_period_id")


class SyncerStats(_Stats):
    total_writes = pw.IntegerField(default=0)
    writes_succeeded = pw.IntegerField(default=0)
    writes_failed = pw.IntegerField(default=0)
    avg_writes_in_flight = pw.FloatField(default=0)
    max_writes_in_flight = pw.IntegerField(default=0)
    min_writes_in_flight = pw.IntegerField(default=0)
    avg_queued_writes = pw.FloatField(default=0)
    max_queued_writes = pw.IntegerField(default=0)
    min_queued_writes = pw.IntegerField(default=0)
    avg_inbox_length = pw.FloatField(default=0)
    max_inbox_length = pw.IntegerField(default=0)
    min_inbox_length = pw.IntegerField(default=0)
    avg_time_in_write_queue = pw.FloatField(default=0)
    max_time_in_write_queue = pw.FloatField(default=0)
    min_time_in_write_queue = pw.FloatField(default=0)
    avg_time_in_inbox = pw.FloatField(default=0)
    max_time_in_inbox = pw.FloatField(default=0)
    min_time_in_inbox = pw.FloatField(default=0)

    class Meta:
        table_name = "syncer_stats"


class WebhookDelivery(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    run_id = pw.CharField(null=True)
    webhook_type = pw.CharField()
    trigger = pw.CharField()
    url = pw.TextField()
    attempt_count = pw.IntegerField(default=0)
    status_code = pw.IntegerField(null=True)
    success = pw.BooleanField(default=False)
    error = pw.TextField(null=True)
    request_duration = pw.FloatField(null=True)
    created_at = UTCDateTimeField()
    delivered_at = UTCDateTimeField(null=True)
    integration = pw.CharField(null=True)
    delivery_key = pw.CharField(null=True)
    outcome = pw.CharField(null=True)
    response = pw.TextField(null=True)

    class Meta:
        table_name = "webhook_deliveries"


class Integration(BaseModel):
    """A named notification integration (itinerary/webhooks/store.py); config holds secrets."""

    id = pw.BigAutoField()
    name = pw.CharField(unique=True)
    type = pw.CharField()
    config = JSONField()
    broken_reason = pw.TextField(null=True)
    broken_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "integrations"


class WebhookHandlerStats(_Stats):
    webhooks_sent = pw.IntegerField(default=0)
    webhooks_succeeded = pw.IntegerField(default=0)
    webhooks_failed = pw.IntegerField(default=0)
    total_retries = pw.IntegerField(default=0)
    avg_delivery_time = pw.FloatField(default=0)
    max_delivery_time = pw.FloatField(default=0)
    min_delivery_time = pw.FloatField(default=0)
    avg_inbox_length = pw.FloatField(default=0)
    max_inbox_length = pw.IntegerField(default=0)
    min_inbox_length = pw.IntegerField(default=0)

    class Meta:
        table_name = "webhook_handler_stats"


class ApiToken(BaseModel):
    id = pw.BigAutoField()
    name = pw.CharField(unique=True)
    role = pw.CharField()
    token_hash = pw.CharField(unique=True)
    created_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"


class SchedulerLease(BaseModel):
    """Which process schedules on this database, until when (itinerary/lease.py)."""

    name = pw.CharField(primary_key=True)
    holder = pw.CharField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "scheduler_lease"


MODELS = (
    ConstraintType,
    ActionType,
    Job,
    JobTag,
    JobAction,
    JobRun,
    RunAttempt,
    ConstraintViolation,
    ActionRun,
    SchedulerStats,
    OrchestratorStats,
    SyncerStats,
    WebhookDelivery,
    WebhookHandlerStats,
    ApiToken,
    SchedulerLease,
    Integration,
)


def bind(database: Database) -> None:
    """Point the models at `database`'s reader (writes pass `database.writer` explicitly)."""
    proxy.initialize(database.reader)
