"""`apply -f` and `export`: idempotent, validated as the API does, direct or via a server."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import gevent
import pytest
import yaml
from gevent.pywsgi import WSGIServer

from itinerary import jobfiles, jobstore, messages
from itinerary.cli import apply
from itinerary.clock import FakeClock
from itinerary.db import Database
from tests.api_fakes import start_api
from tests.conftest import ROOT

JOBS = """
jobs:
  - name: nightly
    schedule: "30 2 * * *"
    commands: [["python", "-m", "report"]]
    tags: [reports]
  - name: hourly
    schedule: "0 * * * *"
    commands: [["true"]]
"""


def _apply(database: Database, text: str, *, prune: bool = False) -> list[tuple[str, str]]:
    live = database.read(jobstore.load_jobs)
    changes = jobfiles.plan(
        jobfiles.read_documents(text, "jobs.yaml"), live, prune=prune, source="x"
    )
    jobfiles.apply_to_database(database, changes)
    return [(c.action, c.name) for c in changes]


def test_it_creates_then_reports_unchanged(database: Database) -> None:
    assert _apply(database, JOBS) == [("created", "nightly"), ("created", "hourly")]
    # It should be idempotent: the same file changes nothing the second time.
    assert _apply(database, JOBS) == [("unchanged", "nightly"), ("unchanged", "hourly")]
    changed = JOBS.replace("0 * * * *", "15 * * * *")
    assert _apply(database, changed) == [("unchanged", "nightly"), ("updated", "hourly")]
    assert database.read(jobstore.get_job_by_name, "hourly").schedule == "15 * * * *"


def test_it_prunes_jobs_the_file_does_not_name(database: Database) -> None:
    _apply(database, JOBS)
    only = "jobs:\n  - {name: hourly, schedule: '0 * * * *', commands: [[\"true\"]]}\n"
    assert _apply(database, only, prune=True) == [("unchanged", "hourly"), ("archived", "nightly")]
    assert [j.name for j in database.read(jobstore.load_jobs)] == ["hourly"]


def test_it_writes_nothing_when_one_job_is_invalid(database: Database) -> None:
    bad = (
        JOBS
        + "  - {name: Broken, schedule: 'nope', commands: [['x']]}\n"
        + "  - {name: hourly, commands: [[y]]}\n"
    )
    with pytest.raises(jobfiles.ApplyError) as caught:
        _apply(database, bad)
    message = str(caught.value)
    assert "jobs[2] (Broken): name" in message and "jobs[2] (Broken): schedule" in message
    assert "appears twice" in message
    assert database.read(jobstore.load_jobs) == []


def test_it_reads_what_export_writes(database: Database) -> None:
    _apply(database, JOBS)
    exported = jobfiles.export_yaml(database.read(jobstore.load_jobs))
    assert yaml.safe_load(exported)["jobs"][0]["name"] == "nightly"
    assert _apply(database, exported) == [("unchanged", "nightly"), ("unchanged", "hourly")]


def test_it_refuses_files_that_are_not_jobs() -> None:
    with pytest.raises(jobfiles.ApplyError, match="not valid YAML"):
        jobfiles.read_documents("jobs: [", "f.yaml")
    with pytest.raises(jobfiles.ApplyError, match="mapping"):
        jobfiles.read_documents("jobs: [1, 2]", "f.yaml")


def test_it_applies_from_the_command_line(sqlite_database: Database, tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(JOBS)
    dsn = f"sqlite:///{sqlite_database.dsn.database}"

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(ROOT / "itinerary.py"), *extra, "--db-dsn", dsn]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)

    dry = run("apply", "-f", str(path), "--dry-run")
    assert dry.returncode == 0 and "2 created" in dry.stdout and "dry run" in dry.stdout
    assert sqlite_database.read(jobstore.load_jobs) == []
    assert "2 created" in run("apply", "-f", str(path)).stdout
    assert "2 unchanged" in run("apply", "-f", str(path)).stdout
    assert "name: nightly" in run("export").stdout
    missing = run("apply", "-f", str(tmp_path / "none.yaml"))
    assert missing.returncode == 1 and missing.stderr.startswith("itinerary: -f: cannot read")


def test_it_applies_through_a_running_server(
    sqlite_database: Database, clock: FakeClock, queues: messages.Queues, tmp_path: Path
) -> None:
    api = start_api(sqlite_database, clock, queues)
    server = WSGIServer(("127.0.0.1", 0), api.client.application, log=None)
    server.start()
    path = tmp_path / "jobs.yaml"
    path.write_text(JOBS)
    args = argparse.Namespace(
        file=str(path),
        dry_run=False,
        prune=False,
        token=None,
        server=f"http://127.0.0.1:{server.server_port}",
    )
    try:
        with gevent.Timeout(20):
            assert apply.run_apply(args, None) == 0
            # It should go through the API, so the scheduler hears of each job at once.
            assert sorted(j.name for j in api.scheduler.jobs.values()) == ["hourly", "nightly"]
            assert apply.run_apply(args, None) == 0
        assert sum(isinstance(m, messages.JobUpserted) for m in api.scheduler.seen) == 2
    finally:
        server.stop()
        api.close()
