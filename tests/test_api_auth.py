"""Authentication and roles on every route of the table, so none is forgotten."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from itinerary import messages, tokens
from itinerary.api import ROUTES, auth_mode
from itinerary.api.routing import Route
from itinerary.auth import RANK
from itinerary.clock import FakeClock
from itinerary.config import load
from itinerary.db import Database
from tests.api_fakes import Api, start_api


@pytest.fixture
def secured(
    sqlite_database: Database, clock: FakeClock, queues: messages.Queues
) -> Iterator[tuple[Api, dict[str, str]]]:
    harness = start_api(sqlite_database, clock, queues, host="0.0.0.0")
    made = {role: tokens.create(sqlite_database, role, role, clock.now()) for role in tokens.ROLES}
    yield harness, made
    harness.close()


def _path(route_path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "1", route_path)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_it_guards_every_route(secured: tuple[Api, dict[str, str]], route: Route) -> None:
    api, made = secured
    path = _path(route.path)
    anonymous = api.call(route.method, path)
    if route.role is None:
        assert anonymous.status_code == 200
        return
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    for role, token in made.items():
        resp = api.call(route.method, path, headers={"Authorization": f"Bearer {token}"})
        if RANK[role] < RANK[route.role]:
            assert resp.status_code == 403, role
            assert route.role in resp.get_json()["error"]["message"]
        else:
            assert resp.status_code not in (401, 403), (role, resp.get_json())


def test_it_refuses_unknown_revoked_and_malformed_tokens(
    secured: tuple[Api, dict[str, str]],
) -> None:
    api, made = secured
    assert api.get("/jobs", headers={"Authorization": "Bearer itn_nope"}).status_code == 401
    assert api.get("/jobs", headers={"Authorization": f"Basic {made['admin']}"}).status_code == 401
    tokens.revoke(api.database, "admin", api.clock.now())
    resp = api.get("/jobs", headers={"Authorization": f"Bearer {made['admin']}"})
    assert resp.status_code == 401 and "revoked" in resp.get_json()["error"]["message"]


def test_it_records_a_tokens_last_use_at_most_once_a_minute(
    secured: tuple[Api, dict[str, str]],
) -> None:
    api, made = secured
    bearer = {"Authorization": f"Bearer {made['viewer']}"}

    def last_used() -> object:
        flush = messages.Flush(api.clock.now())
        api.ctx.queues.syncer.put(flush)
        flush.reply.get(timeout=5)
        return {t["name"]: t["lastUsedAt"] for t in tokens.list_tokens(api.database)}["viewer"]

    first = api.clock.now()
    assert last_used() is None
    assert api.get("/jobs", headers=bearer).status_code == 200
    assert last_used() == first
    api.clock.advance(59)
    assert api.get("/jobs", headers=bearer).status_code == 200
    assert last_used() == first  # not written again within the minute
    api.clock.advance(1)
    assert api.get("/jobs", headers=bearer).status_code == 200
    assert last_used() == api.clock.now()


def test_it_says_when_authentication_is_off() -> None:
    base = load(None, {})
    assert auth_mode(base).startswith("authentication off (listening on loopback")
    assert "required" in auth_mode(replace(base, host="0.0.0.0"))
    assert "OFF" in auth_mode(replace(base, host="0.0.0.0", insecure_no_auth=True))


def test_it_needs_no_token_with_insecure_no_auth(
    sqlite_database: Database, clock: FakeClock, queues: messages.Queues
) -> None:
    api = start_api(sqlite_database, clock, queues, host="0.0.0.0", insecure_no_auth=True)
    try:
        assert api.get("/jobs").status_code == 200
    finally:
        api.close()
