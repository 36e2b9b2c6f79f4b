"""Schema migrations: plain SQL files per dialect, applied once, under a lock.

`migrations/<dialect>/NNN_name.sql` are applied in order at start-up. A lock
(PostgreSQL advisory lock, MySQL `GET_LOCK`, SQLite `BEGIN IMMEDIATE`) makes two
processes starting together apply each file exactly once. Each applied file is
recorded in `schema_migrations` with a SHA-256 checksum, so an edited migration
or a database newer than this code stops start-up with a clear message instead
of running on a schema nobody tested.

Hand-written rather than yoyo-migrations: yoyo locks with a table of its own and
records no content checksum; what we need is ~200 lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee as pw

from itinerary.db import Database

log = logging.getLogger(__name__)
FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 7_263_000_431  # PostgreSQL advisory lock id: "itinerary migrations"
LOCK_NAME = "itinerary_migrations"
LOCK_TIMEOUT_S = 120

TABLE_SQL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "name VARCHAR(255) NOT NULL, checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMP NOT NULL)",
    "postgres": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "name VARCHAR(255) NOT NULL, checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMP NOT NULL)",
    "mysql": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "name VARCHAR(255) NOT NULL, checksum VARCHAR(64) NOT NULL, applied_at DATETIME(6) NOT NULL)"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
}


class MigrationError(RuntimeError):
    """Start-up must stop: the message names the file and the database's reason."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


@dataclass(frozen=True)
class Status:
    version: int
    name: str
    state: str  # applied | pending | changed | unknown (in the database, not on disk)
    applied_at: datetime | None


def discover(migrations_dir: str | Path, driver: str) -> list[Migration]:
    """The dialect's migration files in order; MigrationError when the folder is unusable."""
    root = Path(migrations_dir)
    if not root.is_dir():
        raise MigrationError(f"--migrations-dir: {root} does not exist or is not a directory")
    folder = root / driver
    if not folder.is_dir():
        raise MigrationError(f"--migrations-dir: {root} has no {driver}/ folder of migrations")
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is used by {found[version].name} too")
        found[version] = Migration(version, path.name, path.read_text())
    if not found:
        raise MigrationError(f"--migrations-dir: {folder} holds no migrations")
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a script on `;` outside quotes and comments."""
    out, buf, quote, i = [], [], "", 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif ch == ";":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf).strip())
    return [s for s in out if s]


def _applied(conn: pw.Database) -> dict[int, tuple[str, str, datetime]]:
    rows = conn.execute_sql("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {int(v): (n, c, a) for v, n, c, a in rows.fetchall()}


def _table_exists(conn: pw.Database) -> bool:
    return "schema_migrations" in conn.get_tables()


def _check(known: list[Migration], applied: dict[int, tuple[str, str, Any]]) -> None:
    by_version = {m.version: m for m in known}
    newer = sorted(v for v in applied if v not in by_version)
    if newer:
        raise MigrationError(
            f"the database schema is at version {max(applied)} ({applied[max(applied)][0]}), "
            f"newer than this Itinerary knows (up to {known[-1].version}); upgrade Itinerary"
        )
    for version, (name, checksum, _) in applied.items():
        if by_version[version].checksum != checksum:
            raise MigrationError(
                f"{name} was edited after it was applied (checksum differs); "
                "restore the file and put the change in a new migration"
            )


def _apply_one(conn: pw.Database, migration: Migration) -> None:
    log.info("applying migration %s", migration.name)
    for stmt in migration.statements():
        conn.execute_sql(stmt)
    marks = ", ".join([conn.param] * 4)
    conn.execute_sql(
        f"INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ({marks})",
        (
            migration.version,
            migration.name,
            migration.checksum,
            datetime.now(UTC).replace(tzinfo=None),
        ),
    )


def migrate(db: Database, migrations_dir: str | Path) -> int:
    """Apply pending migrations; return the schema version. Safe to run concurrently."""
    known = discover(migrations_dir, db.driver)
    return db.write(_migrate_locked, db, known)


def _migrate_locked(db: Database, known: list[Migration]) -> int:
    conn = db.writer
    with _lock(db, conn):
        conn.execute_sql(TABLE_SQL[db.driver])
        for migration in known:
            # One transaction per file where DDL is transactional (PostgreSQL, SQLite);
            # MySQL commits DDL implicitly, so a failed file there may leave a part behind.
            with _transaction(db, conn):
                applied = _applied(conn)
                _check(known, applied)
                if migration.version in applied:
                    continue
                try:
                    _apply_one(conn, migration)
                except pw.DatabaseError as exc:
                    lines = str(exc).strip().splitlines()
                    reason = lines[0] if lines else type(exc).__name__
                    raise MigrationError(f"migration {migration.name} failed: {reason}") from None
    return _log_version(known)


def _transaction(db: Database, conn: pw.Database) -> Any:
    if db.driver == "mysql":
        return contextlib.nullcontext()
    if db.driver == "sqlite":
        # BEGIN IMMEDIATE takes SQLite's write lock: a second process waits (busy_timeout),
        # then sees this migration recorded and skips it.
        return conn.atomic(lock_type="IMMEDIATE")
    return conn.atomic()


@contextlib.contextmanager
def _lock(db: Database, conn: pw.Database) -> Iterator[None]:
    """Hold the dialect's migration lock (SQLite locks per transaction instead)."""
    if db.driver == "postgres":
        conn.execute_sql("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    elif db.driver == "mysql":
        got = conn.execute_sql("SELECT GET_LOCK(%s, %s)", (LOCK_NAME, LOCK_TIMEOUT_S)).fetchone()
        if not got or got[0] != 1:
            raise MigrationError(
                f"could not take the migration lock within {LOCK_TIMEOUT_S}s; "
                "is another Itinerary migrating?"
            )
    try:
        yield
    finally:
        if db.driver == "postgres":
            conn.execute_sql("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        elif db.driver == "mysql":
            conn.execute_sql("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))


def _log_version(known: list[Migration]) -> int:
    last = known[-1]
    log.info("database schema at version %d (%s)", last.version, last.name)
    return last.version


def status(db: Database, migrations_dir: str | Path) -> list[Status]:
    """Applied, pending, changed and unknown migrations, in version order."""
    known = discover(migrations_dir, db.driver)
    applied = db.read(lambda: _applied(db.reader) if _table_exists(db.reader) else {})
    out: list[Status] = []
    by_version = {m.version: m for m in known}
    for version in sorted(set(by_version) | set(applied)):
        mig, row = by_version.get(version), applied.get(version)
        if row is None:
            out.append(Status(version, mig.name if mig else "?", "pending", None))
        elif mig is None:
            out.append(Status(version, row[0], "unknown", row[2]))
        else:
            state = "applied" if mig.checksum == row[1] else "changed"
            out.append(Status(version, mig.name, state, row[2]))
    return out


def is_current(db: Database, migrations_dir: str | Path) -> tuple[bool, str]:
    """(True, '') when every migration on disk is applied unchanged; else the reason."""
    try:
        states = status(db, migrations_dir)
    except MigrationError as exc:
        return False, str(exc)
    bad = [s for s in states if s.state != "applied"]
    if not bad:
        return True, ""
    return False, ", ".join(f"{s.name} is {s.state}" for s in bad)
