"""One orchestrator at a time, with a fake clock, a fake executor and a fake syncer."""

from __future__ import annotations

from datetime import timedelta

import gevent
import pytest

from itinerary import config as configmod
from itinerary import states
from itinerary.clock import settle
from itinerary.jobs import Action, JobSpec
from itinerary.messages import ActionRunRecord, AdmitRun, RunFinished, ViolationRecord
from itinerary.orchestrator import NOT_CLAIMED, Orchestrator, Slot
from tests.fakes import FakeExecutor, FakeSyncer


@pytest.fixture
def env(clock, queues):  # type: ignore[no-untyped-def]
    executor, syncer = FakeExecutor(clock), FakeSyncer(queues.syncer)
    yield executor, syncer
    syncer.stop()


def launch(clock, queues, executor, **job_fields) -> tuple[Orchestrator, gevent.Greenlet]:  # type: ignore[no-untyped-def]
    job = JobSpec(name="j", id=1, commands=(("true",),), **job_fields)
    slot = Slot("rorchestrator01", job, clock.now() + timedelta(seconds=5))
    orch = Orchestrator(slot, queues, clock, executor, configmod.load(None, {}))
    return orch, gevent.spawn(orch.run)


def test_it_exits_quietly_when_the_slot_is_claimed_elsewhere(clock, queues, env) -> None:
    executor, syncer = env
    syncer.claimed.add((1, clock.now() + timedelta(seconds=5)))
    orch, greenlet = launch(clock, queues, executor)
    clock.advance(10)
    assert greenlet.dead and executor.requests == []
    assert orch.finished and orch.outcome == NOT_CLAIMED
    # It should not tell the loop, which is not waiting for this run to end.
    assert not [m for m in queues.scheduler.queue if isinstance(m, RunFinished)]


def test_it_tells_the_loop_it_finished_only_when_the_loop_waits_for_it(clock, queues, env) -> None:
    executor, syncer = env
    orch, greenlet = launch(clock, queues, executor)
    clock.advance(5)
    orch.linger = True  # the loop found it running after its grace period
    executor.exit("rorchestrator01", clock.now())
    settle()
    (finished,) = [m for m in queues.scheduler.queue if isinstance(m, RunFinished)]
    assert (finished.run_id, finished.status) == ("rorchestrator01", states.SUCCEEDED)


def test_it_retries_a_failed_attempt_with_backoff(clock, queues, env) -> None:
    executor, syncer = env
    retry = Action("retry", "on_failure", {"maxRetries": 1, "backoff": "10s"})
    orch, greenlet = launch(clock, queues, executor, actions=(retry,))
    clock.advance(5)
    executor.exit("rorchestrator01", clock.now(), code=2)
    clock.advance(9)
    assert len(executor.requests) == 1
    clock.advance(1)
    assert [r.attempt for r in executor.requests] == [1, 2]
    executor.exit("rorchestrator01", clock.now(), code=0, attempt=2)
    settle()
    assert syncer.final("rorchestrator01").status == states.SUCCEEDED
    assert [m.action for m in syncer.other if isinstance(m, ActionRunRecord)] == ["retry"]


def test_it_fails_after_the_last_retry(clock, queues, env) -> None:
    executor, syncer = env
    retry = Action("retry", "on_failure", {"maxRetries": 1})
    orch, greenlet = launch(clock, queues, executor, actions=(retry,))
    clock.advance(5)
    executor.exit("rorchestrator01", clock.now(), code=2)
    settle()
    executor.exit("rorchestrator01", clock.now(), code=3, attempt=2)
    settle()
    final = syncer.final("rorchestrator01")
    assert (final.status, final.exit_code, final.reason) == (states.FAILED, 3, "exit code 3")


@pytest.mark.covers("maxAllowedRunTime")
def test_it_kills_and_fails_a_run_over_max_allowed_run_time(clock, queues, env) -> None:
    executor, syncer = env
    orch, greenlet = launch(clock, queues, executor, constraints={"maxAllowedRunTime": "1m"})
    clock.advance(5)
    executor.running("rorchestrator01", clock.now())
    clock.advance(61)
    final = syncer.final("rorchestrator01")
    assert final.status == states.FAILED and "maxAllowedRunTime 1m exceeded" in final.reason
    (violation,) = [m for m in syncer.other if isinstance(m, ViolationRecord)]
    assert violation.constraint == "maxAllowedRunTime"


@pytest.mark.covers("maxExpectedRunTime")
def test_it_flags_a_run_behind_schedule_after_max_expected_run_time(clock, queues, env) -> None:
    executor, syncer = env
    orch, greenlet = launch(clock, queues, executor, constraints={"maxExpectedRunTime": "30s"})
    clock.advance(5)
    executor.running("rorchestrator01", clock.now())
    clock.advance(31)
    assert any(u.behind_schedule for u in syncer.updates)
    assert [m.constraint for m in syncer.other if isinstance(m, ViolationRecord)] == [
        "maxExpectedRunTime"
    ]
    assert not greenlet.dead


def test_it_skips_a_run_over_max_concurrent_runs(clock, queues, env) -> None:
    executor, syncer = env
    orch, greenlet = launch(clock, queues, executor, constraints={"maxConcurrentRuns": 1})
    clock.advance(5)
    ask = next(m for m in queues.scheduler.queue if isinstance(m, AdmitRun))
    ask.reply.set(("full", ["rother000000001"]))
    settle()
    assert syncer.statuses("rorchestrator01")[-2:] == [states.WAITING, states.SKIPPED]
    assert "maxConcurrentRuns 1 reached: rother000000001" in syncer.final("rorchestrator01").reason
    # It should record the skip as a violation too, so on_violation actions can answer it.
    (violation,) = [m for m in syncer.other if isinstance(m, ViolationRecord)]
    assert violation.constraint == "maxConcurrentRuns" and executor.requests == []


def test_it_fails_a_run_the_executor_cannot_start(clock, queues, env) -> None:
    executor, syncer = env
    executor.fail_start = "image registry down"
    orch, greenlet = launch(clock, queues, executor)
    clock.advance(5)
    final = syncer.final("rorchestrator01")
    assert (final.status, final.reason) == (states.FAILED, "could not start: image registry down")


@pytest.mark.covers("catchUpWindow")
def test_it_records_a_missed_slot_outside_the_catch_up_window(clock, queues, env) -> None:
    executor, syncer = env
    job = JobSpec(
        name="j", id=1, commands=(("true",),), constraints={"catchUp": True, "catchUpWindow": "1m"}
    )
    slot = Slot("rmissed00000001", job, clock.now() - timedelta(minutes=5), missed_reason="down")
    gevent.spawn(Orchestrator(slot, queues, clock, executor, configmod.load(None, {})).run)
    settle()
    (claim,) = syncer.claims
    assert claim.status == states.MISSED
    assert claim.reason == "down; 5m late, outside catchUpWindow 1m"
