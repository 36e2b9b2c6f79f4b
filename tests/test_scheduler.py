"""The scheduler loop driven by a fake clock: every seed step, with no real sleeping."""

from __future__ import annotations

import gc
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import gevent
import pytest
from gevent.event import Event

from itinerary import config as configmod
from itinerary import states
from itinerary.clock import FakeClock, settle
from itinerary.jobs import JobSpec
from itinerary.messages import (
    CancelRun,
    GetLoopStats,
    JobRemoved,
    JobUpserted,
    KillInstances,
    LoopIteration,
    QueryActive,
    Queues,
    RunNow,
    SkipNext,
)
from itinerary.scheduler import Scheduler
from tests.fakes import FakeExecutor, FakeSyncer

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def job(job_id: int = 1, schedule: str | None = "* * * * *", **kw: object) -> JobSpec:
    return JobSpec(name=f"job-{job_id}", id=job_id, schedule=schedule, commands=(("true",),), **kw)


@pytest.fixture
def config() -> configmod.Config:
    return configmod.load(None, {})


@pytest.fixture
def parts(clock: FakeClock, queues: Queues, config: configmod.Config):  # type: ignore[no-untyped-def]
    executor = FakeExecutor(clock)
    syncer = FakeSyncer(queues.syncer)
    scheduler = Scheduler(config, queues, clock, executor, database=None)  # type: ignore[arg-type]
    clock.advance(31)  # the 12:00 slot is past its grace period: tests start clean
    yield scheduler, executor, syncer
    syncer.stop()
    scheduler.group.kill()


def add(scheduler: Scheduler, *jobs: JobSpec) -> None:
    for j in jobs:
        scheduler.handle(JobUpserted(j, T0), T0)


def tick_to(scheduler: Scheduler, clock: FakeClock, when: datetime) -> None:
    """Tick once a second (as `run` would) up to `when`."""
    while clock.now() < when:
        clock.advance(1)
        scheduler.tick(clock.now())
        settle()


def runs_of(scheduler: Scheduler, job_id: int) -> list[datetime]:
    return sorted(e.scheduled_at for e in scheduler.active.values() if e.job_id == job_id)


def test_it_launches_an_orchestrator_pre_schedule_interval_ahead(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=49))
    # It should not launch a run more than PRE_SCHEDULE_INTERVAL (10 s) ahead.
    assert runs_of(scheduler, 1) == []
    tick_to(scheduler, clock, T0 + timedelta(seconds=50))
    assert runs_of(scheduler, 1) == [T0 + timedelta(minutes=1)]
    assert syncer.claims[0].status == states.SCHEDULED
    assert executor.requests == []


def test_it_starts_the_run_at_its_start_time_not_before(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=59))
    assert executor.requests == []
    tick_to(scheduler, clock, T0 + timedelta(seconds=60))
    assert [r.scheduled_at for r in executor.requests] == [T0 + timedelta(minutes=1)]


def test_it_launches_a_slot_in_the_grace_period_once(parts, clock, config) -> None:
    scheduler, executor, syncer = parts
    # A job added 5 s after its slot (a near miss) still runs, once.
    clock.set(T0 + timedelta(seconds=65))
    scheduler.handle(JobUpserted(job(schedule="1 12 * * *"), clock.now()), clock.now())
    scheduler.tick(clock.now())
    settle()
    run_id = executor.requests[0].run_id
    executor.running(run_id, clock.now())
    executor.exit(run_id, clock.now())
    tick_to(scheduler, clock, T0 + timedelta(seconds=100))
    # It should keep the finished run in the map until the grace period passed (dedup).
    assert len(executor.requests) == 1
    assert run_id not in scheduler.active


def test_it_keeps_a_finished_fast_run_until_its_grace_period_passed(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    run_id = executor.requests[0].run_id
    executor.exit(run_id, clock.now())
    tick_to(scheduler, clock, T0 + timedelta(seconds=62))
    assert scheduler.active[run_id].done
    tick_to(scheduler, clock, T0 + timedelta(seconds=91))
    assert run_id not in scheduler.active
    assert [r.run_id for r in executor.requests] == [run_id]


def test_it_forgets_a_run_still_going_after_its_grace_period_once_it_ends(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(schedule="1 12 * * *"))
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    run_id = executor.requests[0].run_id
    executor.running(run_id, clock.now())
    tick_to(scheduler, clock, T0 + timedelta(seconds=95))
    assert run_id in scheduler.active
    executor.exit(run_id, clock.now())
    tick_to(scheduler, clock, T0 + timedelta(seconds=96))
    assert run_id not in scheduler.active


def test_it_starts_every_run_of_an_instant_before_recording_any(parts, clock, queues) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, *(job(i) for i in range(1, 51)))
    start, written = executor.start, []

    def start_noting_writes(request):  # type: ignore[no-untyped-def]
        written.append(len(syncer.updates) + queues.syncer.qsize())
        return start(request)

    executor.start = start_noting_writes  # type: ignore[method-assign]
    tick_to(scheduler, clock, T0 + timedelta(seconds=60))
    # It should send nothing to the syncer between the first start and the last.
    assert len(written) == 50 and set(written) == {written[0]}
    settle()
    assert len([u for u in syncer.updates if u.status == states.STARTING]) == 50


def test_it_holds_the_collector_off_from_just_before_the_instant_to_the_start(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=59))
    assert gc.isenabled()
    clock.advance(0.6)  # 12:00:59.6
    assert not gc.isenabled() and executor.requests == []
    clock.advance(0.4)
    assert gc.isenabled() and len(executor.requests) == 1


def test_it_goes_on_starting_runs_while_one_start_waits(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(1), job(2), job(3))
    start, network = executor.start, Event()

    def slow_for_job_1(request):  # type: ignore[no-untyped-def]
        if request.job.id == 1:
            network.wait()
        return start(request)

    executor.start = slow_for_job_1  # type: ignore[method-assign]
    tick_to(scheduler, clock, T0 + timedelta(seconds=60))
    assert sorted(r.job.id for r in executor.requests) == [2, 3]
    network.set()
    settle()
    assert sorted(r.job.id for r in executor.requests) == [1, 2, 3]


def test_it_rebuilds_the_index_when_a_job_changes(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(schedule="0 13 * * *"))
    tick_to(scheduler, clock, T0 + timedelta(seconds=35))
    assert scheduler.index.next_for(1, clock.now()) is None
    scheduler.inbox.put(JobUpserted(job(schedule="*/2 * * * *"), clock.now()))
    tick_to(scheduler, clock, T0 + timedelta(seconds=37))
    assert scheduler.index.next_for(1, clock.now()) == T0 + timedelta(minutes=2)


def test_it_stops_scheduling_a_removed_job(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    scheduler.inbox.put(JobRemoved(1, clock.now()))
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    assert executor.requests == []


def test_it_runs_a_manual_run_with_its_args(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(schedule=None))
    msg = RunNow(1, clock.now(), args=("--day", "monday"))
    scheduler.inbox.put(msg)
    tick_to(scheduler, clock, T0 + timedelta(seconds=32))
    run_id = msg.reply.get(timeout=1)
    assert executor.requests[0].run_id == run_id
    assert executor.requests[0].args == ("--day", "monday")
    assert syncer.claims[0].trigger == "manual"
    assert syncer.claims[0].scheduled_at == T0 + timedelta(seconds=31)


def test_it_answers_a_manual_run_only_once_its_row_is_committed(parts, clock, queues) -> None:
    scheduler, executor, syncer = parts
    syncer.stop()  # claims wait in the inbox: nothing is committed yet
    add(scheduler, job(schedule=None))
    first, second = RunNow(1, clock.now()), RunNow(1, clock.now())
    scheduler.handle(first, clock.now())
    scheduler.handle(second, clock.now())
    settle()
    assert not first.reply.ready() and not second.reply.ready()
    claims = [queues.syncer.get_nowait(), queues.syncer.get_nowait()]
    claims[0].reply.set(True)
    claims[1].reply.set(False)  # somebody else has that slot
    settle()
    assert first.reply.get(timeout=1) == claims[0].run_id
    with pytest.raises(ValueError, match="was not recorded: its slot was taken"):
        second.reply.get(timeout=1)


def test_it_refuses_a_manual_run_of_an_unknown_job(parts, clock) -> None:
    scheduler, executor, syncer = parts
    msg = RunNow(99, clock.now())
    scheduler.handle(msg, clock.now())
    with pytest.raises(KeyError, match="job 99 does not exist"):
        msg.reply.get(timeout=1)


def test_it_refuses_a_manual_run_of_a_job_not_manually_runnable(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(manually_runnable=False))
    msg = RunNow(1, clock.now())
    scheduler.handle(msg, clock.now())
    with pytest.raises(ValueError, match="not manually runnable"):
        msg.reply.get(timeout=1)


def test_it_gives_two_manual_runs_in_one_instant_two_slots(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(schedule=None))
    first, second = RunNow(1, clock.now()), RunNow(1, clock.now())
    scheduler.handle(first, clock.now())
    scheduler.handle(second, clock.now())
    settle()
    assert len({c.scheduled_at for c in syncer.claims}) == 2


def test_it_cancels_a_run_before_it_starts(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=55))
    (run_id,) = scheduler.active
    msg = CancelRun(run_id, "not today", clock.now())
    scheduler.inbox.put(msg)
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    assert msg.reply.get(timeout=1) is True
    assert executor.requests == []
    assert syncer.final(run_id).status == states.KILLED
    assert "not today" in syncer.final(run_id).reason


def test_it_cancels_a_running_run_by_killing_it(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    run_id = executor.requests[0].run_id
    executor.running(run_id, clock.now())
    scheduler.inbox.put(CancelRun(run_id, "operator", clock.now()))
    tick_to(scheduler, clock, T0 + timedelta(seconds=63))
    assert executor.killed == [(run_id, "cancelled: operator")]
    assert syncer.statuses(run_id)[-1] == states.KILLED


def test_it_answers_cancel_of_an_unknown_run_with_false(parts, clock) -> None:
    scheduler, executor, syncer = parts
    msg = CancelRun("rnothere0000000", "x", clock.now())
    scheduler.handle(msg, clock.now())
    assert msg.reply.get(timeout=1) is False


def test_it_kills_only_the_latest_instance_when_asked(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=121))
    first, second = (r.run_id for r in executor.requests)
    executor.running(first, T0 + timedelta(minutes=1))
    executor.running(second, T0 + timedelta(minutes=2))
    scheduler.inbox.put(KillInstances(1, True, "killLatestInstance", clock.now()))
    tick_to(scheduler, clock, T0 + timedelta(seconds=123))
    assert [k[0] for k in executor.killed] == [second]


def test_it_skips_the_next_instance(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    scheduler.inbox.put(msg := SkipNext(1, "skipNextInstance by rX", clock.now()))
    tick_to(scheduler, clock, T0 + timedelta(seconds=121))
    skipped = [c for c in syncer.claims if c.status == states.SKIPPED]
    assert [c.scheduled_at for c in skipped] == [T0 + timedelta(minutes=1)]
    assert msg.reply.get(timeout=1) == T0 + timedelta(minutes=1)  # the API shows it
    assert [r.scheduled_at for r in executor.requests] == [T0 + timedelta(minutes=2)]


def test_it_skips_a_launched_run_that_has_not_started(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=55))
    (run_id,) = scheduler.active
    scheduler.inbox.put(msg := SkipNext(1, "skip it", clock.now()))
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    assert executor.requests == []
    assert syncer.final(run_id).status == states.SKIPPED
    assert msg.reply.get(timeout=1) == T0 + timedelta(minutes=1)


def test_it_skips_exactly_the_slot_a_previous_leader_accepted(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    third = T0 + timedelta(minutes=3)
    scheduler.inbox.put(msg := SkipNext(1, "accepted before", clock.now(), slot=third))
    tick_to(scheduler, clock, T0 + timedelta(seconds=241))
    skipped = [c.scheduled_at for c in syncer.claims if c.status == states.SKIPPED]
    assert skipped == [third] and msg.reply.get(timeout=1) == third
    assert [r.scheduled_at for r in executor.requests] == [
        T0 + timedelta(minutes=m) for m in (1, 2, 4)
    ]


def test_it_refuses_to_skip_for_a_paused_unknown_or_unscheduled_job(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(1, enabled=False), job(2, schedule=None))
    for job_id, error, text in ((1, ValueError, "is paused"), (2, ValueError, "no schedule")):
        scheduler.handle(msg := SkipNext(job_id, "x", clock.now()), clock.now())
        with pytest.raises(error, match=text):
            msg.reply.get(timeout=1)
    scheduler.handle(msg := SkipNext(3, "x", clock.now()), clock.now())
    with pytest.raises(KeyError):
        msg.reply.get(timeout=1)
    assert scheduler._skips == {}


def test_it_answers_queries_about_active_runs(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(1), job(2, schedule="0 13 * * *"))
    tick_to(scheduler, clock, T0 + timedelta(seconds=61))
    query = QueryActive(1, clock.now())
    scheduler.handle(query, clock.now())
    (run,) = query.reply.get(timeout=1)
    assert (run.job_id, run.scheduled_at, run.status) == (1, T0 + timedelta(minutes=1), "starting")


def test_it_reports_loop_figures_to_the_stats_collector(parts, clock, queues) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job())
    tick_to(scheduler, clock, T0 + timedelta(seconds=50))
    figures = [m for m in list(queues.stats.queue) if isinstance(m, LoopIteration)]
    assert len(figures) == 19
    assert sum(f.launched for f in figures) == 1
    stats = GetLoopStats(clock.now())
    scheduler.handle(stats, clock.now())
    assert stats.reply.get(timeout=1)["iterations"] == 19


def test_it_records_slots_missed_during_a_stall(parts, clock, queues) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(schedule="*/1 * * * *"))
    scheduler.tick(clock.now())
    clock.advance(289)  # the loop did not run for almost five minutes
    scheduler.tick(clock.now())
    settle()
    missed = [c for c in syncer.claims if c.status == states.MISSED]
    assert len(missed) == 4  # 12:01-12:04; 12:05 is inside the grace period and runs
    assert "stalled" in missed[0].reason and "catchUp is off" in missed[0].reason
    # The stats collector hears how long past its grace period (30 s) each slot was found.
    (figures,) = [m for m in list(queues.stats.queue) if isinstance(m, LoopIteration) and m.missed]
    assert (figures.missed, sorted(figures.missed_by_s)) == (4, [50.0, 110.0, 170.0, 230.0])


def test_it_catches_up_a_stall_inside_the_window(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(constraints={"catchUp": True, "catchUpWindow": "3m"}))
    scheduler.tick(clock.now())
    clock.advance(289)
    scheduler.tick(clock.now())
    settle()
    ran = sorted(r.scheduled_at for r in executor.requests)
    missed = sorted(c.scheduled_at for c in syncer.claims if c.status == states.MISSED)
    assert ran == [T0 + timedelta(minutes=m) for m in (3, 4, 5)]
    assert missed == [T0 + timedelta(minutes=m) for m in (1, 2)]
    caught_up = [c for c in syncer.claims if c.status == states.SCHEDULED]
    assert [c.trigger for c in caught_up] == ["catchup", "catchup", "schedule"]


def test_it_spreads_a_burst_of_launches_over_the_pre_schedule_interval(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, *(job(i) for i in range(1, 901)))
    tick_to(scheduler, clock, T0 + timedelta(seconds=50))
    # It should launch only part of the 900 slots in the first iteration they are visible.
    assert 0 < len(scheduler.active) < 900
    tick_to(scheduler, clock, T0 + timedelta(seconds=59))
    assert len(scheduler.active) == 900


def test_it_makes_run_ids_ahead_in_iterations_that_launch_nothing(parts, clock) -> None:
    scheduler, executor, syncer = parts
    add(scheduler, job(1), job(2))
    scheduler.tick(clock.now())
    made = list(scheduler._run_ids)
    assert len(made) == 2  # one per scheduled job
    tick_to(scheduler, clock, T0 + timedelta(seconds=51))  # one launch an iteration
    assert set(scheduler.active) == set(made)


def test_it_reports_ready_only_while_ticking(parts, clock) -> None:
    scheduler, executor, syncer = parts
    assert scheduler.ready()[0] is False
    scheduler.tick(clock.now())
    assert scheduler.ready() == (True, "the scheduler loop is ticking")
    clock.advance(60)
    ok, reason = scheduler.ready()
    assert not ok and "60.0s ago" in reason


def test_it_shuts_down_with_orchestrators_in_every_state(clock, queues, config) -> None:
    config = replace(config, shutdown_timeout=5.0)
    executor = FakeExecutor(clock)
    syncer = FakeSyncer(queues.syncer)
    scheduler = Scheduler(config, queues, clock, executor, database=None)  # type: ignore[arg-type]
    clock.advance(31)
    add(scheduler, job(1, schedule="1 12 * * *"), job(2, schedule="2 12 * * *"))
    loop = gevent.spawn(scheduler.run)
    clock.advance(30)  # 12:01:01: job 1 running
    one = executor.requests[0].run_id
    executor.running(one, clock.now())
    clock.advance(50)  # 12:01:51: job 2 (12:02) launched and waiting for its start time
    assert {e.status for e in scheduler.active.values()} >= {states.RUNNING, states.SCHEDULED}
    scheduler.stop()
    settle()
    # It should give the running run time to finish, and release the scheduled ones.
    executor.exit(one, clock.now())
    clock.advance(2)  # the loop notices at its next interval
    loop.join(timeout=2)
    assert loop.dead
    assert syncer.final(one).status == states.SUCCEEDED
    waiting = [e for e in scheduler.active.values() if e.job_id == 2]
    assert waiting and syncer.final(waiting[0].orchestrator.slot.run_id) is None
    syncer.stop()


def test_it_releases_running_runs_when_the_shutdown_timeout_passes(clock, queues, config) -> None:
    config = replace(config, shutdown_timeout=3.0)
    executor = FakeExecutor(clock)
    syncer = FakeSyncer(queues.syncer)
    scheduler = Scheduler(config, queues, clock, executor, database=None)  # type: ignore[arg-type]
    clock.advance(31)
    add(scheduler, job())
    loop = gevent.spawn(scheduler.run)
    clock.advance(30)
    run_id = executor.requests[0].run_id
    executor.running(run_id, clock.now())
    scheduler.stop()
    for _ in range(5):
        clock.advance(1)
    loop.join(timeout=2)
    assert loop.dead
    # It should leave the workload alone (no kill) and the run unfinished, for adoption.
    assert executor.killed == []
    assert syncer.final(run_id) is None
    syncer.stop()
