"""The OpenAPI document covers every route, and schemathesis finds no 5xx and no bad response."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from itinerary import messages
from itinerary.api import DOCUMENT, ROUTES, make_api
from itinerary.clock import FakeClock
from itinerary.db import Database
from tests.api_fakes import Api, start_api

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_it_documents_every_mounted_route(sqlite_database: Database) -> None:
    app = make_api(None)  # type: ignore[arg-type] - routes only, no request is served
    mounted = {(r.method, re.sub(r"<([a-z_]+)>", r"{\1}", r.rule)) for r in app.routes}
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    assert mounted == documented == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        op = DOCUMENT["paths"][route.path][route.method.lower()]
        params = {p["name"] for p in op["parameters"]}
        assert params == {p.name for p in route.path_params} | {p.name for p in route.params}
        assert str(route.ok) in op["responses"] and "400" in op["responses"]
        assert ("401" in op["responses"]) == (route.role is not None)


@pytest.fixture
def harness(sqlite_database: Database, clock: FakeClock, queues: messages.Queues) -> Iterator[Api]:
    api = start_api(sqlite_database, clock, queues)
    job = api.create_job(manualRunModifiableFields=["args", "env", "resources"])
    api.add_run(job["id"], clock.now(), handle={"log": "hello"})
    yield api
    api.close()


def test_it_survives_schemathesis(harness: Api) -> None:
    # schemathesis' pytest plugin does not load under pytest 9, so drive each operation's
    # hypothesis strategy directly: the same generation and checks, a bounded number of cases.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", harness.client.application)
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the document's own route; everything else is exercised.
    labels = {f"{r.method} {r.path}" for r in ROUTES} - {"GET /openapi.json"}
    assert {op.label for op in operations} == labels
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
