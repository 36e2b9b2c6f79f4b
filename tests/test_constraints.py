"""Each constraint's effect, end to end: real syncer and database, local processes, real HTTP.

Every "why did it not run" reason is asserted, and the workloads' own side effects
(files they write) are counted, not only the records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from itinerary import states
from tests.runkit import Endpoint, Kit, kit_config

pytestmark = pytest.mark.slow
covers = pytest.mark.covers


@pytest.fixture
def kit(database, tmp_path: Path) -> Iterator[Kit]:
    kit = Kit(database, kit_config(tmp_path))
    yield kit
    kit.stop()


@pytest.fixture
def hook() -> Iterator[Endpoint]:
    endpoint = Endpoint()
    yield endpoint
    endpoint.stop()


def touch(tmp_path: Path, name: str = "ran") -> str:
    """A command that leaves a mark of having run (one line per run)."""
    return f"echo $ITINERARY_RUN_ID >> {tmp_path / name}"


def marks(tmp_path: Path, name: str = "ran") -> list[str]:
    path = tmp_path / name
    return path.read_text().split() if path.exists() else []


@covers("preRunHook")
def test_it_starts_a_run_once_the_pre_run_hook_answers_200(kit, hook, tmp_path) -> None:
    job = kit.job(command=touch(tmp_path), args=["a"], constraints={"preRunHook": hook.url})
    run_id = kit.run(job)
    assert kit.final(run_id).status == states.SUCCEEDED
    assert marks(tmp_path) == [run_id]
    (call,) = hook.seen
    assert call["json"]["runId"] == run_id and call["json"]["trigger"] == "manual"
    assert call["json"]["args"] == ["a"] and call["json"]["jobName"] == "j"


def test_it_skips_a_run_whose_pre_run_hook_says_no(kit, hook, tmp_path) -> None:
    hook.default = (404, "not here", 0.0)
    job = kit.job(command=touch(tmp_path), constraints={"preRunHook": {"url": hook.url}})
    run = kit.final(kit.run(job))
    assert (run.status, run.reason) == (states.SKIPPED, "preRunHook: 404 not here")
    assert marks(tmp_path) == []
    (violation,) = kit.violations(run.run_id)
    assert violation.details["status"] == 404 and violation.details["body"] == "not here"


def test_it_keeps_the_first_500_bytes_of_a_refusing_hook(kit, hook, tmp_path) -> None:
    hook.default = (403, "x" * 2000, 0.0)
    job = kit.job(command=touch(tmp_path), constraints={"preRunHook": hook.url})
    run = kit.final(kit.run(job))
    (violation,) = kit.violations(run.run_id)
    assert violation.details["body"] == "x" * 500 and run.status == states.SKIPPED


def test_it_skips_a_run_whose_hook_refuses_connections_after_its_retries(kit, tmp_path) -> None:
    closed = Endpoint()
    closed.stop()  # nothing listens on its port any more
    hook = {"url": closed.url, "retries": 2}
    job = kit.job(command=touch(tmp_path), constraints={"preRunHook": hook})
    run = kit.final(kit.run(job))
    assert run.status == states.SKIPPED and run.reason.startswith("preRunHook: no answer")
    assert "refused" in run.reason.lower() and marks(tmp_path) == []
    assert kit.violations(run.run_id)[0].details["attempts"] == 3


def test_it_skips_a_run_whose_hook_times_out(kit, hook, tmp_path) -> None:
    hook.default = (200, "late", 2.0)
    hook_config = {"url": hook.url, "timeout": "200ms"}
    job = kit.job(command=touch(tmp_path), constraints={"preRunHook": hook_config})
    run = kit.final(kit.run(job))
    assert (run.status, run.reason) == (
        states.SKIPPED,
        "preRunHook: no answer timed out after 0.2s",
    )
    assert marks(tmp_path) == []


def test_it_retries_a_hook_answering_503_and_starts_on_200(kit, hook, tmp_path) -> None:
    hook.script = [(503, "busy", 0.0)]
    hook_config = {"url": hook.url, "retries": 1, "headers": {"X-Token": "t0k"}}
    job = kit.job(command=touch(tmp_path), constraints={"preRunHook": hook_config})
    run = kit.final(kit.run(job))
    assert run.status == states.SUCCEEDED and len(hook.seen) == 2
    assert hook.seen[1]["headers"]["x-token"] == "t0k"
    # It should never keep the hook's headers (a token) in the record.
    assert "t0k" not in str(kit.violations(run.run_id)) and kit.violations(run.run_id) == []


@covers("postRunHook")
def test_it_fails_a_succeeded_run_whose_post_run_hook_says_no(kit, hook, tmp_path) -> None:
    hook.default = (409, "output incomplete", 0.0)
    job = kit.job(command=touch(tmp_path), constraints={"postRunHook": hook.url})
    run = kit.final(kit.run(job))
    assert (run.status, run.reason) == (states.FAILED, "postRunHook: 409 output incomplete")
    assert marks(tmp_path) == [run.run_id]  # the workload ran; the hook judged it
    assert hook.seen[0]["json"]["exitCode"] == 0 and kit.violated(run.run_id) == ["postRunHook"]


def test_it_retries_after_a_post_run_hook_failure(kit, hook, tmp_path) -> None:
    hook.script = [(500, "not yet", 0.0)]
    retry = {"type": "retry", "trigger": "on_failure", "config": {"maxRetries": 1}}
    job = kit.job(command=touch(tmp_path), constraints={"postRunHook": hook.url}, actions=[retry])
    run = kit.final(kit.run(job))
    assert (run.status, run.attempt) == (states.SUCCEEDED, 2)
    assert len(marks(tmp_path)) == 2 and [c["json"]["attempt"] for c in hook.seen] == [1, 2]
