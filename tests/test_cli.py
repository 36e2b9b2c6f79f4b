"""The command line as a user meets it: real processes, one clear line for every bad input."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import MIGRATIONS, ROOT

from itinerary.db import Database, parse_dsn

ENTRY = str(ROOT / "itinerary.py")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
    full_env.pop("DATABASE_URL", None)
    full_env.pop("PORT", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, ENTRY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


def one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    # Info logs may come first; the error itself is exactly one line, and no traceback.
    errors = [ln for ln in proc.stderr.splitlines() if " INFO " not in ln and ln.strip()]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--db-driver", "oracle"], ["--db-driver", "oracle", "sqlite, postgres, mysql"]),
        (["--db-dsn", "nonsense"], ["--db-dsn", "is not a DSN"]),
        (["--db-dsn", "oracle://h/db"], ["--db-dsn", "unknown scheme"]),
        (["--db-dsn", "postgresql://h/db", "--db-driver", "mysql"], ["disagrees"]),
        (
            ["--index-rebuild-interval", "10m", "--lookahead-window", "5m"],
            ["--index-rebuild-interval", "below --lookahead-window"],
        ),
        (["--grace-period=-5s"], ["--grace-period", "negative"]),
        (["--loop-interval", "fast"], ["--loop-interval", "not a duration"]),
        (["--port", "http"], ["--port", "not a whole number"]),
    ],
)
def test_it_rejects_bad_settings_with_one_line(args, needles):
    one_line_error(run("migrate", *args), 2, *needles)


def test_it_names_the_environment_variable_at_fault():
    proc = run("migrate", env={"ITINERARY_LOOP_INTERVAL": "soon"})
    one_line_error(proc, 2, "ITINERARY_LOOP_INTERVAL", "not a duration")


def test_it_reports_an_unreachable_database():
    proc = run("migrate", "--db-dsn", "postgresql://postgres@127.0.0.1:1/test")
    one_line_error(proc, 1, "cannot connect to database", "127.0.0.1:1")


def test_it_reports_a_wrong_password_without_echoing_it():
    proc = run("migrate", "--db-dsn", "mysql://root:hunter2@127.0.0.1:3306/test")
    one_line_error(proc, 1, "cannot connect to database", "Access denied")
    assert "hunter2" not in proc.stderr


def test_it_reports_a_missing_migrations_dir(tmp_path):
    proc = run(
        "migrate",
        "--db-dsn",
        f"sqlite:///{tmp_path}/x.db",
        "--migrations-dir",
        str(tmp_path / "nowhere"),
    )
    one_line_error(proc, 1, "--migrations-dir", "does not exist")


# The version after the last shipped migration, so the broken one is always the newest.
BROKEN = f"{max(int(p.name[:3]) for p in (MIGRATIONS / 'sqlite').glob('*.sql')) + 1:03d}_broken.sql"


def _bad_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    for dialect in ("sqlite", "postgres", "mysql"):
        (folder / dialect / BROKEN).write_text(
            "CREATE TABLE half_done (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (;\n"
        )
    return folder


@pytest.mark.parametrize("empty_dsn", ["sqlite", "postgres"], indirect=True)
def test_it_stops_on_a_failed_migration_and_leaves_nothing_of_it(empty_dsn, tmp_path):
    folder = _bad_migrations(tmp_path)
    proc = run("migrate", "--db-dsn", empty_dsn, "--migrations-dir", str(folder))
    one_line_error(proc, 1, BROKEN, "failed")
    database = Database(parse_dsn(empty_dsn))
    tables = database.read(lambda: database.reader.get_tables())
    database.close()
    # It should keep the shipped migrations applied and roll back every statement of the broken one.
    assert "job_run" in tables
    assert "half_done" not in tables


@pytest.mark.parametrize("empty_dsn", ["sqlite", "postgres", "mysql"], indirect=True)
def test_it_refuses_a_schema_newer_than_the_code(empty_dsn):
    assert run("migrate", "--db-dsn", empty_dsn).returncode == 0
    database = Database(parse_dsn(empty_dsn))
    database.write(
        lambda: database.writer.execute_sql(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
            "VALUES (999, '999_future.sql', 'x', '2030-01-01 00:00:00')"
        )
    )
    database.close()
    one_line_error(run("migrate", "--db-dsn", empty_dsn), 1, "newer than this Itinerary knows")
    one_line_error(run("serve", "--db-dsn", empty_dsn, "--port", "0"), 1, "newer")


def test_it_refuses_an_edited_migration(tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    dsn = f"sqlite:///{tmp_path}/x.db"
    assert run("migrate", "--db-dsn", dsn, "--migrations-dir", str(folder)).returncode == 0
    first = folder / "sqlite" / "001_initial.sql"
    first.write_text(first.read_text() + "\n-- edited\n")
    one_line_error(
        run("migrate", "--db-dsn", dsn, "--migrations-dir", str(folder)),
        1,
        "001_initial.sql",
        "edited",
    )


def test_it_lists_applied_and_pending_migrations(tmp_path):
    dsn = f"sqlite:///{tmp_path}/x.db"
    assert "pending" in run("migrate", "--status", "--db-dsn", dsn).stdout
    assert run("migrate", "--db-dsn", dsn).returncode == 0
    out = run("migrate", "--status", "--db-dsn", dsn).stdout
    assert "applied" in out and "001_initial.sql" in out


@pytest.mark.parametrize("empty_dsn", ["postgres", "mysql"], indirect=True)
def test_two_processes_migrating_together_apply_each_migration_once(empty_dsn):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
    procs = [
        subprocess.Popen(
            [sys.executable, ENTRY, "migrate", "--db-dsn", empty_dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    database = Database(parse_dsn(empty_dsn))
    rows = database.read(
        lambda: database.reader.execute_sql(
            "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version"
        ).fetchall()
    )
    types = database.read(
        lambda: database.reader.execute_sql("SELECT COUNT(*) FROM constraint_types").fetchone()
    )
    database.close()
    assert all(count == 1 for _, count in rows)
    assert types[0] == 8


def test_it_prints_help_for_every_setting():
    out = run("--help").stdout
    for flag in (
        "--db-driver",
        "--db-dsn",
        "--migrations-dir",
        "--skip-migrations",
        "--pre-schedule-interval",
        "--index-rebuild-interval",
        "--lookahead-window",
        "--grace-period",
        "--loop-interval",
        "--shutdown-timeout",
        "--log-format",
    ):
        assert flag in out


def test_it_serves_readyz_and_stops_cleanly_on_sigterm(tmp_path):
    # It should start with no flags but a database, print its URL, be ready, and exit 0.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
    env.update(
        ITINERARY_DB_DSN=f"sqlite:///{tmp_path}/it.db",
        ITINERARY_PORT="0",
        ITINERARY_LOG_DIR=str(tmp_path / "logs"),
    )
    proc = subprocess.Popen(
        [sys.executable, ENTRY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
        url = line.split("running at ", 1)[1].split()[0]
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"{url}/readyz", timeout=5)
        for _ in range(100):  # the loop's first tick may take a moment
            if ready.status_code == 200:
                break
            time.sleep(0.05)
            ready = requests.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        metrics = requests.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200 and "itinerary_" in metrics.text
        assert requests.get(f"{url}/api/v1/jobs", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in proc.stderr.read()
