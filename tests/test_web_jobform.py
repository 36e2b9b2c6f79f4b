"""The job form's constraints and actions as rows (P7): add and remove rows without
JavaScript, each error beside its own row's field, masked header secrets, and an
unchanged edit of a job using every constraint and action type saving the same JSON."""

from __future__ import annotations

import re
from typing import Any

import pytest

from itinerary import jobstore
from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES
from itinerary.web import formrows
from tests.api_fakes import Api, api_fixture  # noqa: F401 (the api fixture)
from tests.web_fakes import JOB_FORM, Browser, form_fields

SECRET = "Bearer s3cr3t-token-abcd"
WEBHOOK = {"url": "https://hooks.example/x", "headers": {"Authorization": SECRET}}
FULL: dict[str, Any] = {
    "name": "full",
    "commands": [["true"]],
    "constraints": {
        "maxConcurrentRuns": {"limit": 2, "overlap": "queue", "queueLimit": 5},
        "catchUp": False,
        "catchUpWindow": 3600,
        "maxExpectedRunTime": "20m",
        "maxAllowedRunTime": "1h",
        "preRunHook": {"url": "https://gate.example/ok", "method": "GET", "timeout": "5s",
                       "retries": 2, "headers": {"X-Token": SECRET}},
        "postRunHook": "https://gate.example/done",
        "requirePreviousSuccess": {"job": "etl", "args": [], "within": "24h", "wait": "10m"},
    },
    "actions": [
        {"type": "retry", "trigger": "on_failure", "config": {"maxRetries": 3, "backoff": "30s"}},
        {"type": "retry", "trigger": "on_violation", "constraint": "maxAllowedRunTime",
         "config": {}},
        {"type": "kickOffJob", "trigger": "on_success", "config": {
            "job": "7", "args": ["--day", "1"], "env": {"MODE": "fast"},
            "resources": {"limits": {"memory": "1Gi", "nvidia.com/gpu": 1}}}},
        {"type": "webhook", "trigger": "on_anomaly", "config": {
            **WEBHOOK, "template": "{{ job.name }}\n", "afterFailures": 2,
            "afterLastRetry": False, "realertEvery": "1h", "recovery": True}},
        {"type": "killAllInstances", "trigger": "on_start", "config": {}},
        {"type": "killLatestInstance", "trigger": "on_missed", "config": {}},
        {"type": "skipNextInstance", "trigger": "on_skipped", "config": {}},
    ],
}  # fmt: skip


@pytest.fixture
def web(api: Api) -> Browser:
    return Browser(api)


def _edit(web: Browser, job: dict[str, Any]) -> dict[str, str]:
    return form_fields(web.text(f"/jobs/{job['id']}/edit"), f"/jobs/{job['id']}")


def _invalid(page: str) -> set[str]:
    return set(re.findall(r'id="(f-[^"]+)"[^>]*aria-invalid="true"', page))


def test_it_saves_an_unchanged_edit_of_a_job_with_every_constraint_and_action(
    web: Browser,
) -> None:
    assert set(FULL["constraints"]) == set(CONSTRAINT_TYPES)
    assert {a["type"] for a in FULL["actions"]} == set(ACTION_TYPES)
    job = web.api.create_job(**FULL)
    web.api.clock.advance(1)
    assert web.post(f"/jobs/{job['id']}", _edit(web, job)).status_code == 303
    after = web.api.get(f"/jobs/{job['id']}").get_json()
    assert after["updatedAt"] != job["updatedAt"]  # it was saved, not skipped
    assert {**after, "updatedAt": None} == {**job, "updatedAt": None}


def test_it_never_shows_a_stored_header_value_and_keeps_it_unless_replaced(
    web: Browser,
) -> None:
    job = web.api.create_job(**FULL)
    page = web.text(f"/jobs/{job['id']}/edit")
    assert SECRET not in page and "X-Token: ••••abcd" in page
    fields = {**_edit(web, job), "actions.3.config.headers": "Authorization: Bearer new"}
    web.api.clock.advance(1)
    assert web.post(f"/jobs/{job['id']}", fields).status_code == 303
    (stored,) = web.api.database.read(jobstore.load_jobs)
    assert stored.constraints["preRunHook"]["headers"] == {"X-Token": SECRET}
    assert stored.actions[3].config["headers"] == {"Authorization": "Bearer new"}


def test_it_refuses_a_masked_header_it_does_not_hold(web: Browser) -> None:
    form = {**JOB_FORM, "constraints.preRunHook.url": "https://gate.example",
            "constraints.preRunHook.headers": "X-Token: ••••abcd"}  # fmt: skip
    resp = web.post("/jobs", form)
    assert resp.status_code == 422
    assert "f-constraints-preRunHook-headers" in _invalid(resp.get_data(as_text=True))
    assert web.api.database.read(jobstore.load_jobs) == []


def test_it_adds_and_removes_action_rows_without_javascript(web: Browser) -> None:
    added = web.post("/jobs", {**JOB_FORM, "_add_action": "1", "_new_action_type": "webhook"})
    fields = form_fields(added.get_data(as_text=True), "/jobs")
    assert added.status_code == 200 and fields["name"] == "backup"
    assert fields["actions.0.type"] == "webhook" and "actions.0.config.url" in fields
    fields.update({"actions.0.config.url": "https://a.example", "_new_action_type": "retry"})
    again = form_fields(web.post("/jobs", {**fields, "_add_action": "1"}).get_data(True), "/jobs")
    assert again["actions.1.type"] == "retry" and "actions.1.config.maxRetries" in again
    removed = web.post("/jobs", {**again, "_remove_action": "0"}).get_data(as_text=True)
    left = form_fields(removed, "/jobs")
    assert left["actions.0.type"] == "retry" and "actions.1.type" not in left
    assert web.api.database.read(jobstore.load_jobs) == []


def test_it_shows_the_fields_of_a_changed_type_or_trigger_in_the_htmx_refresh(web: Browser) -> None:
    form = {**JOB_FORM, "actions.0.type": "kickOffJob", "actions.0.trigger": "on_success",
            "actions.0.config.maxRetries": "3", "_refresh": "1"}  # fmt: skip
    resp = web.post("/jobs", form, headers={"HX-Request": "true"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'name="actions.0.config.job"' in page
    assert 'name="actions.0.config.maxRetries"' not in page
    assert 'name="actions.0.constraint"' not in page  # only for on_violation
    form["actions.0.trigger"] = "on_violation"
    page = web.post("/jobs", form, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'name="actions.0.constraint"' in page
    assert web.api.database.read(jobstore.load_jobs) == []


def test_it_puts_each_error_beside_its_own_rows_field(web: Browser) -> None:
    form = {**JOB_FORM,
            "actions.0.type": "retry", "actions.0.trigger": "on_failure",
            "actions.0.config.maxRetries": "3",
            "actions.1.type": "webhook", "actions.1.trigger": "on_failure",
            "actions.1.config.url": "ftp://nope",
            "actions.2.type": "retry", "actions.2.trigger": "on_success",
            "constraints.preRunHook.url": "https://gate.example",
            "constraints.preRunHook.timeout": "soon",
            "constraints.maxConcurrentRuns.queueLimit": "3"}  # fmt: skip
    resp = web.post("/jobs", form)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert _invalid(page) == {
        "f-actions-1-config-url",
        "f-actions-2-trigger",
        "f-constraints-preRunHook-timeout",
        "f-constraints-maxConcurrentRuns-queueLimit",
    }
    assert 'href="#f-actions-1-config-url"' in page  # the summary links to it
    assert web.api.database.read(jobstore.load_jobs) == []


def test_it_still_requires_csrf_to_add_or_remove_a_row(web: Browser) -> None:
    for button in ({"_add_action": "1"}, {"_remove_action": "0"}, {"_refresh": "1"}):
        assert web.post("/jobs", {**JOB_FORM, **button, "_csrf": "forged"}).status_code == 403
    foreign = {"Origin": "http://evil.example"}
    assert web.post("/jobs", {**JOB_FORM, "_add_action": "1"}, headers=foreign).status_code == 403


def test_it_keeps_a_rows_stored_header_when_an_earlier_row_is_removed(web: Browser) -> None:
    job = web.api.create_job(**FULL)
    page = web.post(f"/jobs/{job['id']}", {**_edit(web, job), "_remove_action": "0"})
    fields = form_fields(page.get_data(as_text=True), f"/jobs/{job['id']}")
    assert fields["actions.2.type"] == "webhook"  # was row 3
    web.api.clock.advance(1)
    assert web.post(f"/jobs/{job['id']}", fields).status_code == 303
    (stored,) = web.api.database.read(jobstore.load_jobs)
    assert len(stored.actions) == 6
    assert stored.actions[2].config["headers"] == {"Authorization": SECRET}


def test_it_puts_a_kickoff_override_error_beside_its_field(web: Browser) -> None:
    form = {**JOB_FORM, "actions.0.type": "kickOffJob", "actions.0.trigger": "on_success",
            "actions.0.config.job": "etl", "actions.0.config.env": "1BAD=x",
            "actions.1.type": "kickOffJob", "actions.1.trigger": "on_success",
            "actions.1.config.job": "etl",
            "actions.1.config.resources": "limits.cpu: lots"}  # fmt: skip
    page = web.post("/jobs", form).get_data(as_text=True)
    assert _invalid(page) == {"f-actions-0-config-env", "f-actions-1-config-resources"}


def test_it_refuses_a_former_types_fields_after_a_type_change_without_javascript(
    web: Browser,
) -> None:
    form = {**JOB_FORM, "actions.0.type": "killAllInstances", "actions.0.trigger": "on_failure",
            "actions.0.config.url": "https://hooks.example/x"}  # fmt: skip
    resp = web.post("/jobs", form)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'id="err-actions-0-config"' in page
    assert 'href="#f-actions-0"' in page and 'id="f-actions-0"' in page
    assert 'name="actions.0.config.url"' not in page  # the form now shows its own (none)


def test_it_reads_back_every_scalar_as_the_json_value_it_showed() -> None:
    tricky = ["30s", "30", "1.5", "true", "", " padded", '"quoted"', "[x]", 30, 1.5, True, 1e21]
    for value in tricky:
        assert formrows.read(formrows.show(value)) == value, value
        assert type(formrows.read(formrows.show(value))) is type(value), value
    assert formrows.read("45") == 45 and formrows.read("1h") == "1h"  # what people type


def test_it_offers_the_configured_integrations_to_a_webhook_row(web: Browser) -> None:
    slack = {"url": "https://hooks.slack.com/services/T000/B000/XXXXXXXX"}
    made = web.api.post("/integrations", json={"name": "ops", "type": "slack", "config": slack})
    assert made.status_code == 201
    form = {**JOB_FORM, "_add_action": "1", "_new_action_type": "webhook"}
    page = web.post("/jobs", form).get_data(as_text=True)
    assert 'list="integration-names"' in page and '<option value="ops">' in page
