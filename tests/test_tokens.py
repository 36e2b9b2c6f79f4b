"""API tokens: stored hashed, listed without values, revoked; the `token` command."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from itinerary import tokens
from itinerary.clock import FakeClock
from itinerary.db import Database
from itinerary.models import ApiToken
from tests.conftest import ROOT


def test_it_stores_only_the_hash(database: Database, clock: FakeClock) -> None:
    token = tokens.create(database, "ci", "operator", clock.now())
    row = database.read(lambda: ApiToken.get(ApiToken.name == "ci"))
    assert token.startswith("itn_") and len(token) > 40
    assert row.token_hash == tokens.hash_token(token) and token not in row.token_hash
    assert row.role == "operator" and row.revoked_at is None


def test_it_refuses_bad_roles_and_duplicate_names(database: Database, clock: FakeClock) -> None:
    tokens.create(database, "ci", "viewer", clock.now())
    with pytest.raises(tokens.TokenError, match="exists already"):
        tokens.create(database, "ci", "viewer", clock.now())
    with pytest.raises(tokens.TokenError, match="--role"):
        tokens.create(database, "other", "root", clock.now())


def test_it_lists_and_revokes(database: Database, clock: FakeClock) -> None:
    tokens.create(database, "b", "admin", clock.now())
    tokens.create(database, "a", "viewer", clock.now())
    tokens.revoke(database, "b", clock.now())
    listed = tokens.list_tokens(database)
    assert [(t["name"], t["revokedAt"] is not None) for t in listed] == [("a", False), ("b", True)]
    with pytest.raises(tokens.TokenError, match="no active token"):
        tokens.revoke(database, "b", clock.now())


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "itinerary.py"), *args, "--db-dsn", dsn],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_touch_records_the_latest_use_and_never_moves_it_back(
    database: Database, clock: FakeClock
) -> None:
    tokens.create(database, "ci", "viewer", clock.now())
    digest = database.read(lambda: ApiToken.get(ApiToken.name == "ci").token_hash)
    later = clock.now() + timedelta(minutes=5)
    assert database.write(lambda: tokens.touch(database.writer, digest, later))
    assert not database.write(lambda: tokens.touch(database.writer, digest, clock.now()))
    assert not database.write(lambda: tokens.touch(database.writer, "0" * 64, later))
    (listed,) = tokens.list_tokens(database)
    assert listed["lastUsedAt"] == later


def test_it_works_from_the_command_line(sqlite_database: Database) -> None:
    dsn = f"sqlite:///{sqlite_database.dsn.database}"
    made = _cli(dsn, "token", "create", "--role", "admin", "--name", "deploy")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert (
        sqlite_database.read(
            lambda: ApiToken.get(ApiToken.token_hash == tokens.hash_token(token)).name
        )
        == "deploy"
    )
    listed = _cli(dsn, "token", "list")
    assert "deploy\tadmin" in listed.stdout and token not in listed.stdout
    assert listed.stdout.rstrip().endswith("active\tnever used")
    assert _cli(dsn, "token", "revoke", "--name", "deploy").returncode == 0
    again = _cli(dsn, "token", "revoke", "--name", "deploy")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "deploy" in again.stderr
