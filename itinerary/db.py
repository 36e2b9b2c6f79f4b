"""Database connections for SQLite, PostgreSQL and MySQL/MariaDB: DSNs, dialects, pools.

Two connections kinds (seed: "All connections besides the Recorder connection
should be read only"): `Database.reader` for everyone, `Database.writer` for the
syncer and migrations only. The models are itinerary/models.py, bound to the reader
there; the syncer passes the writer explicitly (`query.execute(db.writer)`).

Nothing here may block the gevent hub: psycopg2 gets a wait callback that
yields on the socket, PyMySQL uses monkey-patched sockets, and every SQLite call
runs in a worker thread (`Database.call`). Call the database only through
`Database.call`, which also opens and returns pooled connections around the
work, so no greenlet ever leaks a connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import peewee as pw
from gevent.threadpool import ThreadPool
from playhouse.pool import PooledMySQLDatabase, PooledPostgresqlDatabase

from itinerary.errors import ConfigError

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


class ReaderPostgres(PooledPostgresqlDatabase):
    """The read pool on PostgreSQL: a pooled connection is handed out without a round trip.

    peewee's pool checks every connection it hands out with `SELECT 1`: a second statement
    for each read, ~0.2 ms of this process's CPU and one more query for the server (a
    job's failed runs at 500 req/s: the round trip was a seventh of a request's CPU). A
    connection the server has closed is found by the read itself, which `Database.read`
    then retries once on a new connection.
    """

    def _is_closed(self, conn: Any) -> bool:
        return bool(conn.closed) or self._adapter.txn_status(conn) == self._adapter.txn_unknown


class ReadOnlyMySQL(PooledMySQLDatabase):
    """The read pool on MySQL: read-only connections, handed out without a ping.

    MySQL has no connect option for read-only: each new connection is marked once. The
    ping peewee's pool sends before handing a connection out is skipped, as on PostgreSQL.
    """

    def _is_closed(self, conn: Any) -> bool:
        return not conn.open

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
        cls = ReaderPostgres if read_only else PooledPostgresqlDatabase
        return cls(dsn.database, **common)
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
        if write:
            with db.connection_context():
                return fn(*args)
        try:
            with db.connection_context():
                return fn(*args)
        except (pw.OperationalError, pw.InterfaceError) as exc:
            if not _connection_gone(exc):
                raise
            # The server closed it (restarted, or the session was killed): so it may have
            # closed the idle ones too. The read has no effect, so it is made again.
            log.info("a read's connection was gone (%s): retrying on a new one", exc)
            if isinstance(db, PooledPostgresqlDatabase | PooledMySQLDatabase):
                db.close_idle()
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


# PyMySQL's codes for a connection that is gone: server gone away, lost during a query,
# lost while reading the packet, and a command on a closed connection.
_MYSQL_GONE = {2006, 2013, 2055, 0}


def _connection_gone(exc: Exception) -> bool:
    """Whether peewee's `exc` says the connection is gone, not that the statement failed."""
    orig = exc.__cause__ or exc.__context__ or exc  # peewee raises its own in the driver's
    module = type(orig).__module__
    if module.startswith("psycopg2"):
        import psycopg2

        if isinstance(orig, psycopg2.InterfaceError):
            return True
        canceled = psycopg2.errors.QueryCanceled  # a statement timeout: the connection is fine
        return isinstance(orig, psycopg2.OperationalError) and not isinstance(orig, canceled)
    if module.startswith("pymysql"):
        import pymysql

        if isinstance(orig, pymysql.err.InterfaceError):
            return True
        code = orig.args[0] if orig.args else None
        return isinstance(orig, pymysql.err.OperationalError) and code in _MYSQL_GONE
    return False


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
