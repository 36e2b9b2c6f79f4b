"""Job definitions: any JSON, however wrong its types, is a 400 naming the field, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itinerary.jobfiles import ApplyError, plan
from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES, ValidationError, parse_job
from tests.api_fakes import JOB, Api, api_fixture  # noqa: F401 - the `api` fixture

BASE = {"name": "j", "commands": [["true"]]}
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
FIELDS = st.sampled_from(["name", "schedule", "timezone", "env", "resources", "tags", "args"])


def parses_or_names_a_field(body: dict) -> None:
    try:
        parse_job(body)
    except ValidationError as exc:
        assert exc.fields and all(isinstance(v, str) for v in exc.fields.values())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(FIELDS, JSON, st.sampled_from(list(CONSTRAINT_TYPES)), JSON, JSON)
def test_it_answers_random_json_with_field_errors_only(field, value, name, item, config) -> None:
    # It should never raise anything but ValidationError, however wrong a type is.
    parses_or_names_a_field({**BASE, field: value})
    parses_or_names_a_field({**BASE, "constraints": {name: item}})
    if isinstance(config, dict):
        parses_or_names_a_field({**BASE, "constraints": {name: {"url": "http://h", **config}}})
    for kind in ACTION_TYPES:
        action = {"type": kind, "trigger": "on_failure", "config": config}
        parses_or_names_a_field({**BASE, "actions": [action]})


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["type", "trigger", "constraint", "config"]), JSON)
def test_it_names_the_action_key_of_a_wrong_type(key, value) -> None:
    action = {"type": "webhook", "trigger": "on_violation", "constraint": "catchUp"}
    action |= {"config": {"url": "http://h"}, key: value}
    parses_or_names_a_field({**BASE, "actions": [action]})


def test_it_answers_an_unhashable_action_type_with_400(api: Api) -> None:
    body = {**JOB, "actions": [{"type": {}, "trigger": "on_start"}]}
    resp = api.post("/jobs", json=body)
    assert resp.status_code == 400
    assert "actions[0].type" in resp.get_json()["error"]["fields"]


@pytest.mark.parametrize(
    ("constraints", "field", "reason"),
    [
        ({"preRunHook": {"url": "ftp://x"}}, "constraints.preRunHook", "http"),
        ({"preRunHook": {"url": "http://h", "retries": 99}}, "constraints.preRunHook", "retries"),
        ({"requirePreviousSuccess": {"job": True}}, "constraints.requirePreviousSuccess", "job"),
        (
            {"maxConcurrentRuns": {"limit": 2, "overlap": "x"}},
            "constraints.maxConcurrentRuns",
            "overlap",
        ),
    ],
)
def test_it_names_the_reason_of_a_bad_constraint(constraints, field, reason) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_job({**BASE, "constraints": constraints})
    assert reason in caught.value.fields[field]


def test_it_refuses_a_webhook_template_that_does_not_compile() -> None:
    action = {"type": "webhook", "trigger": "on_failure"}
    action["config"] = {"url": "http://h", "template": "{{ oops"}
    with pytest.raises(ValidationError) as caught:
        parse_job({**BASE, "actions": [action]})
    assert "does not compile" in caught.value.fields["actions[0].config"]


def test_it_refuses_retry_on_success() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_job({**BASE, "actions": [{"type": "retry", "trigger": "on_success"}]})
    assert "cannot be taken on_success" in caught.value.fields["actions[0].trigger"]


def kick(job: str) -> dict:
    return {"type": "kickOffJob", "trigger": "on_success", "config": {"job": job}}


def test_it_refuses_a_kick_off_cycle_when_a_job_is_saved_naming_it(api: Api) -> None:
    assert api.post("/jobs", json={**JOB, "name": "a", "actions": [kick("b")]}).status_code == 201
    assert api.post("/jobs", json={**JOB, "name": "b", "actions": [kick("c")]}).status_code == 201
    resp = api.post("/jobs", json={**JOB, "name": "c", "actions": [kick("a")]})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["fields"]["actions"].endswith("cycle: a -> b -> c -> a")
    itself = api.post("/jobs", json={**JOB, "name": "d", "actions": [kick("d")]})
    assert itself.get_json()["error"]["fields"]["actions"].endswith("cycle: d -> d")


def test_it_refuses_a_kick_off_cycle_in_an_applied_file() -> None:
    bodies = [
        {**JOB, "name": "x", "actions": [kick("y")]},
        {**JOB, "name": "y", "actions": [kick("x")]},
    ]
    with pytest.raises(ApplyError) as caught:
        plan(bodies, [], prune=False, source="jobs.yaml")
    assert "kickOffJob actions would form a cycle: x -> y -> x" in str(caught.value)


def test_it_refuses_retry_on_a_violation_that_fails_no_attempt() -> None:
    retry = {"type": "retry", "trigger": "on_violation", "constraint": "preRunHook"}
    with pytest.raises(ValidationError) as caught:
        parse_job({**BASE, "actions": [retry]})
    assert "maxAllowedRunTime and postRunHook" in caught.value.fields["actions[0].constraint"]
