"""Each constraint's effect, end to end: real syncer and database, local processes, real HTTP.

Every "why did it not run" reason is asserted, and the workloads' own side effects
(files they write) are counted, not only the records.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from itinerary import states
from itinerary.messages import RunNow
from tests.runkit import Endpoint, Kit, kit_config

pytestmark = pytest.mark.slow
covers = pytest.mark.covers


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


@covers("requirePreviousSuccess")
def test_it_skips_a_run_whose_dependency_last_failed(kit, tmp_path) -> None:
    etl = kit.job("etl", "exit 3")
    failed = kit.final(kit.run(etl))
    report = kit.job("report", touch(tmp_path), constraints={"requirePreviousSuccess": "etl"})
    run = kit.final(kit.run(report))
    assert run.status == states.SKIPPED and marks(tmp_path) == []
    expected = f"requirePreviousSuccess: etl's last run {failed.run_id} failed at 2026-03-01 12:"
    assert run.reason.startswith(expected)
    assert kit.violated(run.run_id) == ["requirePreviousSuccess"]


def test_it_runs_when_the_dependency_last_succeeded(kit, tmp_path) -> None:
    etl = kit.job("etl", '[ "$0" = ok ]')
    kit.final(kit.run(etl, args=("bad",)))
    kit.final(kit.run(etl, args=("ok",)))
    report = kit.job("report", touch(tmp_path), constraints={"requirePreviousSuccess": "etl"})
    run = kit.final(kit.run(report))
    assert run.status == states.SUCCEEDED and marks(tmp_path) == [run.run_id]


def test_it_matches_the_dependency_on_its_args(kit, tmp_path) -> None:
    etl = kit.job("etl", '[ "$0" = ok ]')
    bad = kit.final(kit.run(etl, args=("bad",)))
    kit.final(kit.run(etl, args=("ok",)))
    needs = {"requirePreviousSuccess": {"job": "etl", "args": ["bad"]}}
    run = kit.final(kit.run(kit.job("report", touch(tmp_path), constraints=needs)))
    assert f"etl with args bad's last run {bad.run_id} failed" in run.reason
    needs = {"requirePreviousSuccess": {"job": etl.id, "args": ["never"]}}
    other = kit.final(kit.run(kit.job("other", touch(tmp_path), constraints=needs)))
    assert other.reason == "requirePreviousSuccess: etl with args never has no run"
    assert marks(tmp_path) == []


def test_it_ignores_a_dependency_success_outside_within(kit, tmp_path) -> None:
    kit.final(kit.run(etl := kit.job("etl", "true")))
    kit.clock.advance(2 * 3600)
    needs = {"requirePreviousSuccess": {"job": "etl", "within": "1h"}}
    run = kit.final(kit.run(kit.job("report", touch(tmp_path), constraints=needs)))
    assert (run.status, run.reason) == (
        states.SKIPPED,
        "requirePreviousSuccess: etl has no run within 1h",
    )
    assert marks(tmp_path) == [] and etl.id


def test_it_waits_for_a_running_dependency_with_wait(kit, tmp_path) -> None:
    etl = kit.job("etl", f"while [ ! -f {tmp_path / 'go'} ]; do sleep 0.02; done")
    etl_run = kit.run(etl)
    kit.drive(lambda: kit.status(etl_run) == states.RUNNING, "etl running")
    needs = {"requirePreviousSuccess": {"job": "etl", "wait": "10m"}}
    run_id = kit.run(kit.job("report", touch(tmp_path), constraints=needs))
    kit.drive(lambda: kit.status(run_id) == states.WAITING, "waiting")
    row = kit.row(run_id)
    assert row.reason.startswith(f"requirePreviousSuccess: etl's last run {etl_run} running")
    (tmp_path / "go").touch()
    assert kit.final(run_id).status == states.SUCCEEDED and marks(tmp_path) == [run_id]


def crowd(kit: Kit, tmp_path: Path, concurrency: dict, runs: int = 50) -> list[str]:
    """`runs` manual runs of one job asked at once; each workload records how many it saw live."""
    live = tmp_path / "live"
    live.mkdir()
    command = (
        f"touch {live}/$ITINERARY_RUN_ID; ls {live} | wc -l >> {tmp_path / 'seen'}; "
        f"sleep 0.1; rm {live}/$ITINERARY_RUN_ID"
    )
    job = kit.job(command=command, constraints={"maxConcurrentRuns": concurrency})
    asks = [RunNow(job.id, kit.clock.now()) for _ in range(runs)]
    for msg in asks:
        kit.queues.scheduler.put(msg)
    run_ids = [kit.drive(lambda m=msg: m.reply.ready() and m.reply.get()) for msg in asks]
    kit.drive(lambda: all(kit.row(r, final=True) for r in run_ids), "every run final")
    kit.flush()
    return run_ids


def most_seen(tmp_path: Path) -> int:
    return max(int(n) for n in (tmp_path / "seen").read_text().split())


@covers("maxConcurrentRuns")
def test_it_never_runs_more_than_max_concurrent_runs_skipping_the_rest(kit, tmp_path) -> None:
    run_ids = crowd(kit, tmp_path, 3)
    rows = [kit.row(r) for r in run_ids]
    skipped = [r for r in rows if r.status == states.SKIPPED]
    # At most 3 at once; how many ran in all depends on how soon the first ones ended.
    assert most_seen(tmp_path) <= 3 and 0 < len(skipped) < 50
    ran = [r for r in rows if r.status == states.SUCCEEDED]
    assert len(ran) + len(skipped) == 50 and len(ran) == len(
        (tmp_path / "seen").read_text().split()
    )
    assert all(r.reason.startswith("maxConcurrentRuns 3 reached: ") for r in skipped)
    # It should record each skip as a violation, so on_violation actions can fire.
    assert all(kit.violated(r.run_id) == ["maxConcurrentRuns"] for r in skipped)


def test_it_queues_runs_over_max_concurrent_runs(kit, tmp_path) -> None:
    run_ids = crowd(kit, tmp_path, {"limit": 3, "overlap": "queue", "queueLimit": 50})
    assert {kit.row(r).status for r in run_ids} == {states.SUCCEEDED}
    assert most_seen(tmp_path) <= 3 and len((tmp_path / "seen").read_text().split()) == 50


def test_it_skips_runs_beyond_the_queue_limit(kit, tmp_path) -> None:
    run_ids = crowd(kit, tmp_path, {"limit": 3, "overlap": "queue", "queueLimit": 5}, runs=12)
    rows = [kit.row(r) for r in run_ids]
    skipped = [r for r in rows if r.status == states.SKIPPED]
    assert most_seen(tmp_path) <= 3 and len(skipped) >= 12 - 3 - 5
    assert "and queueLimit 5 runs already wait" in skipped[0].reason


def test_it_replaces_the_oldest_run_over_max_concurrent_runs(kit, tmp_path) -> None:
    run_ids = crowd(kit, tmp_path, {"limit": 3, "overlap": "replace"})
    rows = [kit.row(r) for r in run_ids]
    assert most_seen(tmp_path) <= 3 and {r.status for r in rows} == {"succeeded", "killed"}
    killed = [r for r in rows if r.status == states.KILLED]
    assert all("replaced by run" in r.reason for r in killed)


@covers("catchUp", "catchUpWindow")
def test_it_marks_a_slot_claimed_before_a_crash_and_run_late_as_catchup(database, tmp_path) -> None:
    first = Kit(database, kit_config(tmp_path))
    constraints = {"catchUp": True, "catchUpWindow": "2h"}
    job = first.job(command=touch(tmp_path), schedule="0 13 * * *", constraints=constraints)
    first.clock.set(first.clock.now().replace(hour=12, minute=59, second=55))
    (claimed,) = first.drive(lambda: first.runs(job), "the slot claimed")
    first.stop()  # before its start time: the claimed run is left for the next process
    first.clock.advance(3600)
    second = Kit(database, kit_config(tmp_path), clock=first.clock)
    try:
        run = second.final(claimed.run_id)
        assert (run.status, run.trigger) == (states.SUCCEEDED, "catchup")
        assert marks(tmp_path) == [run.run_id]
    finally:
        second.stop()


def test_it_gives_the_workload_its_run_context(kit, tmp_path) -> None:
    names = "JOB_NAME RUN_ID ATTEMPT TRIGGER SCHEDULED_AT".split()
    command = " ".join(f'echo "$ITINERARY_{n}" >> {tmp_path / "env"};' for n in names)
    run = kit.final(kit.run(kit.job("ctx", command)))
    job_name, run_id, attempt, trigger, scheduled_at = (tmp_path / "env").read_text().split()
    assert (job_name, run_id, attempt, trigger) == ("ctx", run.run_id, "1", "manual")
    # It should be the slot (RFC 3339), not the start: a job can process "its" slot.
    assert scheduled_at == run.scheduled_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
