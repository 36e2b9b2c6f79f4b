"""`integration create|list|test|delete` and integrations in `apply -f`, as real processes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import gevent
from gevent.pywsgi import WSGIServer

from itinerary.cli import apply
from itinerary.db import Database
from itinerary.messages import IntegrationsChanged
from itinerary.webhooks import store
from tests.api_fakes import start_api
from tests.conftest import ROOT
from tests.receivers import Receiver

TOKEN = "T1/B2/cliSECRETtoken"
FILE = """
integrations:
  - name: team-slack
    type: slack
    config: {url: "${SLACK_URL}"}
jobs:
  - name: nightly
    commands: [["true"]]
    actions: [{type: webhook, trigger: on_failure, config: {integration: team-slack}}]
"""


def cli(database: Database, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "itinerary.py"), *args]
    cmd += ["--db-dsn", f"sqlite:///{database.dsn.database}"]
    environ = {**os.environ, **env}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=environ)


def test_it_creates_lists_tests_and_deletes_from_the_command_line(sqlite_database, slack_rx):
    url = f"{slack_rx.url}/services/{TOKEN}"
    body = '{"url": "${HOOK}"}'
    made = cli(
        sqlite_database,
        "integration",
        "create",
        "--name",
        "ops",
        "--type",
        "slack",
        "--json",
        body,
        HOOK=url,
    )
    assert made.returncode == 0, made.stderr
    listed = cli(sqlite_database, "integration", "list")
    assert "ops\tslack\tok" in listed.stdout and "cliSECRET" not in listed.stdout
    tested = cli(sqlite_database, "integration", "test", "--name", "ops")
    assert (tested.returncode, tested.stdout.strip()) == (0, "ok: 200 ok")
    assert slack_rx.seen[0].path == f"/services/{TOKEN}"
    assert cli(sqlite_database, "integration", "delete", "--name", "ops").returncode == 0
    assert sqlite_database.read(store.load_all) == []


def test_it_says_why_a_command_line_integration_is_refused(sqlite_database):
    bad = cli(
        sqlite_database,
        "integration",
        "create",
        "--name",
        "x",
        "--type",
        "slack",
        "--json",
        '{"url": "${NOPE}"}',
    )
    assert bad.returncode == 1
    assert (
        bad.stderr.strip()
        == "itinerary integration: config.url: environment variable NOPE is not set"
    )
    gone = cli(sqlite_database, "integration", "test", "--name", "missing")
    assert gone.returncode == 1 and "no integration named 'missing'" in gone.stderr


def test_it_applies_integrations_with_env_secrets_and_refuses_deleting_used_ones(
    sqlite_database: Database, tmp_path: Path, slack_rx: Receiver
):
    path = tmp_path / "all.yaml"
    path.write_text(FILE)
    url = f"{slack_rx.url}/services/{TOKEN}"
    first = cli(sqlite_database, "apply", "-f", str(path), SLACK_URL=url)
    assert first.returncode == 0, first.stderr
    assert "created   integration team-slack" in first.stdout and "1 created" in first.stdout
    again = cli(sqlite_database, "apply", "-f", str(path), SLACK_URL=url)
    assert "unchanged integration team-slack" in again.stdout
    assert sqlite_database.read(store.get, "team-slack").config == {"url": url}
    refused = cli(sqlite_database, "integration", "delete", "--name", "team-slack")
    assert refused.returncode == 1 and "used by the jobs nightly" in refused.stderr


def test_it_applies_integrations_through_a_running_server(
    sqlite_database: Database, clock, queues, tmp_path: Path, monkeypatch
):
    api = start_api(sqlite_database, clock, queues)
    server = WSGIServer(("127.0.0.1", 0), api.client.application, log=None)
    server.start()
    path = tmp_path / "all.yaml"
    path.write_text(FILE)
    monkeypatch.setenv("SLACK_URL", f"https://hooks.slack.com/services/{TOKEN}")
    args = argparse.Namespace(file=str(path), dry_run=False, prune=False, token=None)
    args.server = f"http://127.0.0.1:{server.server_port}"
    try:
        with gevent.Timeout(20):
            assert apply.run_apply(args, None) == 0
            assert apply.run_apply(args, None) == 0  # unchanged: compared masked
        changed = [m for m in queues.webhooks.queue if isinstance(m, IntegrationsChanged)]
        assert [m.name for m in changed] == ["team-slack"]
        assert sqlite_database.read(store.get, "team-slack").config["url"].endswith(TOKEN)
    finally:
        server.stop()
        api.close()
