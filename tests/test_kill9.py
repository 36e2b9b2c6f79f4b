"""`kill -9` just after a minute boundary, then an immediate restart: no slot runs twice.

Real `itinerary.py` processes with the local executor and real time (a fake clock cannot
cross into another process). Every case (a database of each dialect, a kill instant in the
first second after the boundary) gets its own fresh database and server, all aimed at the
same boundary, so the whole set waits for one minute boundary. Each workload appends its
job's name and the minute to a file: the count of lines is the count of times it really ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gevent
import pytest

from itinerary import jobfiles, states
from itinerary.db import Database, parse_dsn
from itinerary.migrate import migrate
from itinerary.models import Job, JobRun, SchedulerLease
from tests.conftest import DIALECTS, MIGRATIONS, ROOT, create_database

pytestmark = pytest.mark.slow

JOBS = 40  # every-minute jobs per server
KILL_AFTER = (0.05, 0.25, 0.6)  # seconds after the boundary


@dataclass
class Case:
    dialect: str
    kill_after: float
    dsn: str
    home: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.home / "ran.txt"

    def serve(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
        env.update(ITINERARY_DB_DSN=self.dsn, ITINERARY_PORT="0", ITINERARY_LOG_DIR="logs")
        log = open(self.home / f"server-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "itinerary.py")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.home,
        )
        log.close()
        self.procs.append(proc)

    def output(self) -> str:
        return "".join(p.read_text() for p in sorted(self.home.glob("server-*.log")))


def prepare(case: Case) -> None:
    """Migrate the database and define the jobs before any server starts."""
    body = "echo $0-$(date -u +%M) >> " + str(case.out)
    bodies = [
        {"name": f"j{i}", "schedule": "* * * * *", "commands": [["sh", "-c", body, f"j{i}"]]}
        for i in range(JOBS)
    ]
    database = Database(parse_dsn(case.dsn))
    try:
        migrate(database, MIGRATIONS)
        jobfiles.apply_to_database(database, jobfiles.plan(bodies, [], prune=False, source="test"))
    finally:
        database.close()


def in_db(case: Case, fn):  # type: ignore[no-untyped-def]
    database = Database(parse_dsn(case.dsn))
    try:
        return database.write(lambda: fn(database.writer))
    finally:
        database.close()


def expire_lease(writer) -> None:  # type: ignore[no-untyped-def]
    """What the lease's expiry does 30 s later: let the restarted process schedule at once."""
    past = datetime(2000, 1, 1, tzinfo=UTC)
    SchedulerLease.update(expires_at=past).execute(writer)


def runs_at(boundary: datetime):  # type: ignore[no-untyped-def]
    return lambda writer: list(JobRun.select().where(JobRun.scheduled_at == boundary).bind(writer))


def wait_until_up(case: Case, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "running at" not in case.output():
        assert time.monotonic() < deadline, f"{case.dialect} did not start:\n{case.output()}"
        assert case.procs[-1].poll() is None, case.output()
        gevent.sleep(0.1)


@pytest.fixture
def cases(tmp_path: Path):  # type: ignore[no-untyped-def]
    with contextlib.ExitStack() as stack:
        made = []
        for dialect in DIALECTS:
            for delay in KILL_AFTER:
                home = tmp_path / f"{dialect}-{delay}"
                home.mkdir()
                gen = create_database(dialect, home)
                dsn = next(gen)
                stack.callback(next, gen, None)
                made.append(Case(dialect, delay, dsn, home))
        yield made
        for case in made:
            for proc in case.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.mark.timeout(200)  # one minute boundary to wait for, then the restarts
def test_it_never_runs_a_slot_twice_when_killed_just_after_a_minute_boundary(cases) -> None:
    for case in cases:
        prepare(case)
        case.serve()
    for case in cases:
        wait_until_up(case)
    # The boundary must leave the servers time to launch their runs before it.
    boundary = (datetime.now(UTC) + timedelta(seconds=65)).replace(second=0, microsecond=0)

    def kill_then_restart(case: Case) -> None:
        gevent.sleep(boundary.timestamp() + case.kill_after - time.time())
        case.procs[-1].send_signal(signal.SIGKILL)
        case.procs[-1].wait(timeout=10)
        in_db(case, expire_lease)
        case.serve()

    killers = [gevent.spawn(kill_then_restart, c) for c in cases]
    try:
        gevent.joinall(killers, raise_error=True)
    finally:  # on a failure or timeout too: no restart after the fixture's clean-up
        gevent.killall(killers)
    for case in cases:
        wait_for_the_slot(case, boundary)
    for case in cases:  # before the next boundary: the file holds this slot's runs only
        case.procs[-1].send_signal(signal.SIGTERM)
    found = {f"{c.dialect} +{c.kill_after}s": outcome(c, boundary) for c in cases}
    bad = [f"{key}: {len(w)} of {JOBS} wrong, e.g. {w[0]}" for key, w in found.items() if w]
    assert not bad, "\n".join(bad)


def wait_for_the_slot(case: Case, boundary: datetime) -> None:
    """Until every run of the boundary's slot has ended."""
    deadline = time.monotonic() + 45
    while True:
        rows = in_db(case, runs_at(boundary))
        if len(rows) == JOBS and all(r.status in states.TERMINAL for r in rows):
            return
        assert time.monotonic() < deadline, [(r.run_id, r.status) for r in rows]
        gevent.sleep(0.2)


def outcome(case: Case, boundary: datetime) -> list[str]:
    """What went wrong for one case: a workload run twice, a record that does not say so."""
    rows = in_db(case, runs_at(boundary))
    suffix = f"-{boundary:%M}"
    # A slot in the grace period before the jobs were made runs at start-up: count only the
    # lines written in the boundary's minute (restart recovery acts within seconds).
    text = case.out.read_text() if case.out.exists() else ""
    ran = Counter(line[: -len(suffix)] for line in text.split() if line.endswith(suffix))
    wrong = []
    names = in_db(case, lambda w: {j.id: j.name for j in Job.select().bind(w)})
    for row in rows:
        times, reason = ran[names[row.job_id]], row.reason or ""
        # Only an attempt that never spawned may be lost, and its record says so.
        lost = row.status == states.LOST and times == 0 and "before the restart" in reason
        if not (row.status == states.SUCCEEDED and times == 1) and not lost:
            wrong.append(f"{names[row.job_id]} ran {times} times, recorded {row.status}: {reason}")
    if "Traceback" in case.output():
        wrong.append(case.output())
    return wrong
