"""Hooks, requirePreviousSuccess and kickOffJob end to end through the Kubernetes fake.

The Kubernetes executor talks to fakekube over real HTTP; the test plays the
kubelet (`finish`). What is asserted is what reached the cluster: which Jobs were
created, with which context, and what the runs recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakekube import TOKEN, FakeKube

from itinerary import states
from itinerary.app import make_executor
from tests.runkit import Kit, kit_config

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("dsn", ["sqlite"], indirect=True)]


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    server = FakeKube().start()
    yield server
    server.stop()


@pytest.fixture
def kit(database, tmp_path: Path, kube: FakeKube) -> Iterator[Kit]:
    config = kit_config(tmp_path, executor="kubernetes", kube_api_url=kube.url, kube_token=TOKEN)
    kit = Kit(database, config)
    kit.executor.close()  # the kit's default local executor: this one runs on the fake
    kit.scheduler.executor = kit.executor = make_executor(config, kit.clock)
    yield kit
    kit.stop()


def job(kit: Kit, name: str = "j", **fields: object):  # type: ignore[no-untyped-def]
    return kit.job(name, "true", images=["busybox:1.36"], namespace="batch", **fields)


def finish(kit: Kit, kube: FakeKube, run_id: str, code: int = 0) -> dict:
    """Play the kubelet: the run's pod runs and exits with `code`; the Job's manifest."""
    manifest = kit.drive(lambda: _job_of(kube, run_id), f"a Job for {run_id}")
    kube.run_pod(manifest)
    kit.drive(lambda: kit.status(run_id) == states.RUNNING, f"{run_id} running")
    kube.finish_pod(manifest, code)
    return manifest


def _job_of(kube: FakeKube, run_id: str) -> dict | None:
    try:
        return kube.job_for_run(run_id)
    except KeyError:
        return None


@pytest.mark.covers("preRunHook")
def test_it_creates_the_job_only_after_the_pre_run_hook_said_200(kit, kube, hook) -> None:
    hook.script = [(404, "no", 0.0)]
    spec = job(kit, constraints={"preRunHook": hook.url})
    refused = kit.final(kit.run(spec))
    assert (refused.status, refused.reason) == (states.SKIPPED, "preRunHook: 404 no")
    assert kube.calls("POST", "jobs") == 0
    run_id = kit.run(spec)
    manifest = finish(kit, kube, run_id)
    assert kit.final(run_id).status == states.SUCCEEDED and kube.calls("POST", "jobs") == 1
    env = {
        e["name"]: e["value"] for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ITINERARY_RUN_ID"] == run_id and env["ITINERARY_TRIGGER"] == "manual"
    assert manifest["metadata"]["annotations"]["itinerary.dev/run-id"] == run_id


@pytest.mark.covers("postRunHook")
def test_it_fails_a_kubernetes_run_whose_post_run_hook_says_no(kit, kube, hook) -> None:
    hook.default = (500, "checksum mismatch", 0.0)
    run_id = kit.run(job(kit, constraints={"postRunHook": hook.url}))
    finish(kit, kube, run_id, 0)
    run = kit.final(run_id)
    assert (run.status, run.reason) == (states.FAILED, "postRunHook: 500 checksum mismatch")
    assert hook.seen[0]["json"]["exitCode"] == 0


@pytest.mark.covers("requirePreviousSuccess")
def test_it_creates_no_job_when_the_dependency_failed_on_kubernetes(kit, kube) -> None:
    etl_run = kit.run(job(kit, "etl"))
    finish(kit, kube, etl_run, 3)
    assert kit.final(etl_run).status == states.FAILED
    report = job(kit, "report", constraints={"requirePreviousSuccess": "etl"})
    run = kit.final(kit.run(report))
    assert run.status == states.SKIPPED and f"etl's last run {etl_run} failed" in run.reason
    assert kube.calls("POST", "jobs") == 1  # etl's only


@pytest.mark.covers("kickOffJob")
def test_it_kicks_off_a_kubernetes_job_after_another(kit, kube) -> None:
    child = job(kit, "child", manualRunModifiableFields=["args"])
    kick = {
        "type": "kickOffJob",
        "trigger": "on_success",
        "config": {"job": "child", "args": ["x"]},
    }
    parent_run = kit.run(job(kit, "parent", actions=[kick]))
    finish(kit, kube, parent_run)
    (action,) = kit.drive(lambda: kit.actions(parent_run), "the kickOffJob action run")
    child_run = action.details["childRunId"]
    manifest = finish(kit, kube, child_run)
    run = kit.final(child_run)
    assert (run.job_id, run.parent_run_id, run.trigger) == (child.id, parent_run, "kickoff")
    assert manifest["metadata"]["annotations"]["itinerary.dev/trigger"] == "kickoff"
    assert manifest["spec"]["template"]["spec"]["containers"][0]["args"] == ["x"]
