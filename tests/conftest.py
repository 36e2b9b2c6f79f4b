"""Shared fixtures: databases on all three dialects, a fake clock, queues.

Each test session creates its own PostgreSQL and MariaDB databases (names with
a random suffix) and drops them at the end; SQLite uses a temporary file. A
server that cannot be reached skips its tests with the reason, unless
ITINERARY_REQUIRE_DBS=1 (CI), when it fails them.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import secrets  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from gevent.queue import Queue  # noqa: E402

from itinerary import db as dbmod  # noqa: E402
from itinerary import models  # noqa: E402
from itinerary.clock import FakeClock  # noqa: E402
from itinerary.messages import Queues  # noqa: E402
from itinerary.migrate import migrate  # noqa: E402

# Webhook receivers and a running webhook handler (tests/receivers.py, tests/webhook_hub.py).
pytest_plugins = ["tests.receivers", "tests.webhook_hub", "tests.browser", "tests.runkit"]
ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
PG_ADMIN = os.environ.get("ITINERARY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("ITINERARY_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
REQUIRE = os.environ.get("ITINERARY_REQUIRE_DBS") == "1"
DIALECTS = ("sqlite", "postgres", "mysql")
# Tables the tests write to, emptied between tests (dimension tables keep their rows).
DATA_TABLES = (
    "run_events",
    "anomalies",
    "action_runs",
    "constraint_violations",
    "run_attempts",
    "job_run",
    "job_run_hours",
    "job_actions",
    "job_tags",
    "job",
    "scheduler_stats",
    "orchestrator_stats",
    "syncer_stats",
    "webhook_deliveries",
    "webhook_handler_stats",
    "ui_sessions",
    "api_tokens",
    "scheduler_lease",
    "commands",
    "integrations",
)


def _admin_exec(driver: str, sql: str) -> None:
    if driver == "postgres":
        import psycopg2

        d = dbmod.parse_dsn(PG_ADMIN)
        conn = psycopg2.connect(
            host=d.host,
            port=d.port or 5432,
            user=d.user,
            dbname=d.database,
            password=d.password,
            connect_timeout=5,
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()
    else:
        import pymysql

        d = dbmod.parse_dsn(MY_ADMIN)
        conn = pymysql.connect(
            host=d.host,
            port=d.port or 3306,
            user=d.user,
            password=d.password or "",
            connect_timeout=5,
        )
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()


def _server_dsn(driver: str, name: str) -> str:
    admin = dbmod.parse_dsn(PG_ADMIN if driver == "postgres" else MY_ADMIN)
    auth = admin.user + (f":{admin.password}" if admin.password else "")
    scheme = "postgresql" if driver == "postgres" else "mysql"
    port = admin.port or (5432 if driver == "postgres" else 3306)
    return f"{scheme}://{auth}@{admin.host}:{port}/{name}"


def create_database(driver: str, tmp_path: Path) -> Iterator[str]:
    """Yield the DSN of a brand-new empty database; drop it afterwards."""
    if driver == "sqlite":
        yield f"sqlite:///{tmp_path / f'it-{secrets.token_hex(4)}.db'}"
        return
    name = f"itinerary_test_{secrets.token_hex(5)}"
    try:
        _admin_exec(driver, f"CREATE DATABASE {name}")
    except Exception as exc:  # server down or unreachable
        msg = f"{driver} server unreachable ({type(exc).__name__}: {exc})"
        if REQUIRE:
            pytest.fail(msg + " and ITINERARY_REQUIRE_DBS=1")
        pytest.skip(msg)
    try:
        yield _server_dsn(driver, name)
    finally:
        if driver == "postgres":
            _admin_exec(driver, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        else:
            _admin_exec(driver, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=DIALECTS)
def empty_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each dialect, per test."""
    yield from create_database(request.param, tmp_path)


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    made: dict[str, str] = {}
    gens = []

    def get(driver: str) -> str:
        if driver not in made:
            gen = create_database(driver, tmp_path_factory.mktemp(driver))
            made[driver] = next(gen)
            gens.append(gen)
            database = dbmod.Database(dbmod.parse_dsn(made[driver]))
            migrate(database, MIGRATIONS)
            database.close()
        return made[driver]

    yield get  # type: ignore[misc]
    for gen in gens:
        next(gen, None)


@pytest.fixture(params=DIALECTS)
def dsn(request: pytest.FixtureRequest, _migrated) -> str:  # type: ignore[no-untyped-def]
    """A migrated database of each dialect (shared per session, emptied between tests)."""
    return _migrated(request.param)


@pytest.fixture
def database(dsn: str) -> Iterator[dbmod.Database]:
    """An open, migrated `Database` bound to the models; emptied after the test."""
    database = dbmod.Database(dbmod.parse_dsn(dsn))
    models.bind(database)
    yield database

    def wipe() -> None:
        for table in DATA_TABLES:
            database.writer.execute_sql(f"DELETE FROM {table}")

    database.write(wipe)
    database.close()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[dbmod.Database]:
    """A migrated SQLite database only, for tests where the dialect does not matter."""
    database = dbmod.Database(dbmod.parse_dsn(f"sqlite:///{tmp_path / 'it.db'}"))
    migrate(database, MIGRATIONS)
    models.bind(database)
    yield database
    database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def queues() -> Queues:
    return Queues(scheduler=Queue(), syncer=Queue(maxsize=10000), stats=Queue(), webhooks=Queue())
