"""Each action type and each trigger, end to end: what it did, and its action_run row."""

from __future__ import annotations

import pytest

from itinerary import states
from tests.runkit import Endpoint, Kit, kit_config

pytestmark = pytest.mark.slow
covers = pytest.mark.covers


def webhook(trigger: str, url: str, constraint: str | None = None, **config: object) -> dict:
    action = {"type": "webhook", "trigger": trigger, "config": {"url": url, **config}}
    return action | ({"constraint": constraint} if constraint else {})


def delivered(kit: Kit, hook: Endpoint, run_id: str, count: int = 1) -> list[dict]:
    """The webhook calls, once the action runs say they were delivered."""
    kit.drive(lambda: len(hook.seen) >= count, "webhook delivered")
    kit.drive(lambda: all(a.success for a in kit.actions(run_id)), "action runs delivered")
    return hook.seen


@covers("kickOffJob")
def test_it_kicks_off_another_job_recording_the_child_run(kit, tmp_path) -> None:
    child = kit.job("child", f"echo $ITINERARY_TRIGGER >> {tmp_path / 'child'}")
    kick = {"type": "kickOffJob", "trigger": "on_success", "config": {"job": "child"}}
    parent = kit.final(kit.run(kit.job("parent", "true", actions=[kick])))
    (action,) = kit.drive(lambda: kit.actions(parent.run_id), "the kickOffJob action run")
    child_run = kit.final(action.details["childRunId"])
    assert (child_run.job_id, child_run.parent_run_id) == (child.id, parent.run_id)
    assert child_run.trigger == "kickoff" and child_run.status == states.SUCCEEDED
    assert (tmp_path / "child").read_text() == "kickoff\n"


def test_it_stores_and_applies_a_kick_offs_env_override(kit, tmp_path) -> None:
    kit.job("child", f"echo $WHO > {tmp_path / 'who'}", manualRunModifiableFields=["env"])
    config = {"job": "child", "env": {"WHO": "parent"}}
    kick = {"type": "kickOffJob", "trigger": "on_success", "config": config}
    parent = kit.final(kit.run(kit.job("parent", "true", actions=[kick])))
    (action,) = kit.drive(lambda: kit.actions(parent.run_id), "the kickOffJob action run")
    child_run = kit.final(action.details["childRunId"])
    assert child_run.overrides == {"env": {"WHO": "parent"}}
    assert (tmp_path / "who").read_text() == "parent\n"


def kick(job: str) -> dict:
    return {"type": "kickOffJob", "trigger": "on_success", "config": {"job": job}}


def test_it_refuses_a_kick_off_chain_deeper_than_the_limit(database, tmp_path) -> None:
    kit = Kit(database, kit_config(tmp_path, kickoff_depth_limit=1))
    try:
        kit.job("c", f"touch {tmp_path / 'c'}")
        kit.job("b", "true", actions=[kick("c")])
        first = kit.final(kit.run(kit.job("a", "true", actions=[kick("b")])))
        (to_b,) = kit.drive(lambda: kit.actions(first.run_id), "a's kickOffJob")
        b_run = kit.final(to_b.details["childRunId"])
        (to_c,) = kit.drive(lambda: kit.actions(b_run.run_id), "b's kickOffJob")
        assert not to_c.success and "deeper than --kickoff-depth-limit 1" in to_c.error
        assert not (tmp_path / "c").exists() and to_c.details["depth"] == 2
    finally:
        kit.stop()


def test_it_records_a_kick_off_of_a_job_that_does_not_exist(kit) -> None:
    first = kit.final(kit.run(kit.job("a", "true", actions=[kick("gone")])))
    (action,) = kit.drive(lambda: kit.actions(first.run_id), "the kickOffJob action run")
    assert not action.success and action.error == "job gone does not exist or is archived"


@covers("retry")
def test_it_retries_an_attempt_killed_by_max_allowed_run_time(kit, tmp_path) -> None:
    mark = tmp_path / "once"
    command = f"if [ -f {mark} ]; then exit 0; fi; touch {mark}; sleep 30"
    retry = {"type": "retry", "trigger": "on_violation", "constraint": "maxAllowedRunTime"}
    job = kit.job(command=command, constraints={"maxAllowedRunTime": "3s"}, actions=[retry])
    run = kit.final(kit.run(job))
    assert (run.status, run.attempt) == (states.SUCCEEDED, 2)
    assert kit.taken(run.run_id) == [("retry", "on_violation", True)]
    assert kit.violated(run.run_id) == ["maxAllowedRunTime"]


@covers("webhook", "on_start")
def test_it_sends_a_templated_webhook_with_headers_on_start(kit, hook) -> None:
    template = '{"text": "{{ jobName }} {{ runID }} {{ trigger }} attempt {{ attempt }}"}'
    action = webhook("on_start", hook.url, template=template, headers={"X-Team": "data"})
    run = kit.final(kit.run(kit.job(actions=[action])))
    (call,) = delivered(kit, hook, run.run_id)
    assert call["json"] == {"text": f"j {run.run_id} on_start attempt 1"}
    assert call["headers"]["x-team"] == "data"
    assert kit.actions(run.run_id)[0].details["state"] == "delivered"


def test_it_records_a_template_that_fails_without_sending(kit, hook) -> None:
    action = webhook("on_success", hook.url + "?token=s3cret", template="{{ 1 / 0 }}")
    run = kit.final(kit.run(kit.job(actions=[action])))
    (action_run,) = kit.drive(lambda: kit.actions(run.run_id))
    assert not action_run.success and "ZeroDivisionError" in action_run.error
    assert hook.seen == [] and run.status == states.SUCCEEDED
    assert action_run.details["url"] == hook.url  # without the token in its query string


def test_it_records_a_webhook_as_pending_then_failed(kit, hook) -> None:
    hook.default = (404, "gone", 0.0)
    run = kit.final(kit.run(kit.job(actions=[webhook("on_success", hook.url)])))
    kit.drive(lambda: kit.actions(run.run_id)[0].details["state"] == "failed", "outcome")
    (action_run,) = kit.actions(run.run_id)
    assert not action_run.success and action_run.details["statusCode"] == 404


@covers("on_success", "on_failure")
def test_it_takes_on_failure_and_on_success_actions(kit, hook) -> None:
    actions = [webhook("on_failure", hook.url), webhook("on_success", hook.url + "/ok")]
    run = kit.final(kit.run(kit.job(command="exit 4", actions=actions)))
    (call,) = delivered(kit, hook, run.run_id)
    assert call["json"]["event"] == "on_failure" and call["json"]["status"] == states.FAILED
    assert call["json"]["error"] == "exit code 4" and call["path"] == "/hook"


@covers("on_violation", "on_skipped")
def test_it_takes_on_violation_and_on_skipped_actions_of_a_refused_run(kit, hook) -> None:
    hook.script = [(418, "teapot", 0.0)]
    actions = [
        webhook("on_violation", hook.url + "/v", constraint="preRunHook"),
        webhook("on_skipped", hook.url + "/s"),
    ]
    job = kit.job(constraints={"preRunHook": hook.url}, actions=actions)
    run = kit.final(kit.run(job))
    calls = delivered(kit, hook, run.run_id, count=3)
    assert sorted(c["path"] for c in calls[1:]) == ["/hook/s", "/hook/v"]
    rows = kit.actions(run.run_id)
    (violation,) = kit.violations(run.run_id)
    assert {a.trigger: a.constraint_violation_id for a in rows} == {
        "on_violation": violation.id,
        "on_skipped": None,
    }


@covers("on_missed")
def test_it_takes_on_missed_actions_for_a_slot_missed_while_down(database, tmp_path, hook) -> None:
    first = Kit(database, kit_config(tmp_path))
    job = first.job(schedule="0 13 * * *", actions=[webhook("on_missed", hook.url)])
    first.stop()
    first.clock.advance(2 * 3600)  # 13:00 passed while nothing ran
    second = Kit(database, kit_config(tmp_path), clock=first.clock)
    try:
        (run,) = second.drive(lambda: second.runs(job), "the missed slot recorded")
        assert run.status == states.MISSED and run.reason.endswith("catchUp is off")
        (call,) = delivered(second, hook, run.run_id)
        assert call["json"]["event"] == "on_missed" and call["json"]["status"] == states.MISSED
    finally:
        second.stop()


@covers("killAllInstances", "killLatestInstance")
@pytest.mark.parametrize("kind", ["killAllInstances", "killLatestInstance"])
def test_it_kills_instances_on_a_violation(kit, tmp_path, kind) -> None:
    kill = {"type": kind, "trigger": "on_violation", "constraint": "maxExpectedRunTime"}
    job = kit.job(command="sleep 30", constraints={"maxExpectedRunTime": "2s"}, actions=[kill])
    run = kit.final(kit.run(job))
    assert (run.status, run.reason) == (states.KILLED, f"cancelled: {kind} by run {run.run_id}")
    assert kit.taken(run.run_id) == [(kind, "on_violation", True)]


@covers("skipNextInstance")
def test_it_skips_the_next_scheduled_instance(kit) -> None:
    skip = {"type": "skipNextInstance", "trigger": "on_success"}
    job = kit.job(schedule="*/5 * * * *", actions=[skip])
    kit.drive(lambda: len(kit.runs(job)) >= 2 and kit.row(kit.runs(job)[1].run_id, final=True))
    first, second = kit.runs(job)[:2]
    assert first.status == states.SUCCEEDED and second.status == states.SKIPPED
    assert second.reason == f"skipNextInstance by run {first.run_id} (on_success)"


def test_it_keeps_each_attempt_s_own_times_exit_code_and_error(kit, tmp_path) -> None:
    mark = tmp_path / "once"
    command = f"if [ -f {mark} ]; then exit 0; fi; touch {mark}; exit 2"
    retry = {"type": "retry", "trigger": "on_failure", "config": {"backoff": "10s"}}
    run = kit.final(kit.run(kit.job(command=command, actions=[retry])))
    first, second = kit.attempts(run.run_id)
    assert (first.status, first.exit_code, first.error) == (states.FAILED, 2, "exit code 2")
    assert (second.status, second.exit_code, second.error) == (states.SUCCEEDED, 0, None)
    assert first.started_at <= first.completed_at
    assert (second.started_at - first.completed_at).total_seconds() >= 10
    assert second.completed_at == run.completed_at and first.started_at == run.started_at
