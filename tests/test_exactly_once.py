"""End to end: real syncer, real database, real processes. Exactly one run per slot.

Scheduled jobs are driven by a fake clock (cron has minutes, not seconds) while real
processes run; manual runs use the real clock with a 50 ms loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import gevent
import pytest
from gevent.queue import Queue

from itinerary import config as configmod
from itinerary import states
from itinerary.clock import Clock, FakeClock, RealClock
from itinerary.db import Database, JobRun
from itinerary.executors.local import LocalExecutor
from itinerary.jobs import JobSpec, parse_job
from itinerary.messages import CancelRun, Flush, JobUpserted, Queues, RunNow, SaveJob, ShutDown
from itinerary.scheduler import Scheduler
from itinerary.syncer import Syncer

pytestmark = pytest.mark.slow


@dataclass
class Instance:
    """One Itinerary process: syncer, local executor, scheduler loop."""

    scheduler: Scheduler
    executor: LocalExecutor
    queues: Queues
    loop: gevent.Greenlet
    syncer: gevent.Greenlet

    def flush(self, clock: Clock) -> None:
        msg = Flush(clock.now())
        self.queues.syncer.put(msg)
        msg.reply.get(timeout=5)

    def stop(self) -> None:
        self.scheduler.stop()
        self.loop.join(timeout=5)
        self.queues.syncer.put(ShutDown())
        self.syncer.join(timeout=5)
        self.executor.close()


def boot(database: Database, config: configmod.Config, clock: Clock) -> Instance:
    queues = Queues(Queue(), Queue(maxsize=1000), Queue(), Queue())
    syncer = gevent.spawn(Syncer(queues.syncer, database, clock, queues.stats, config).run)
    executor = LocalExecutor(config, clock)
    scheduler = Scheduler(config, queues, clock, executor, database)
    scheduler.start_up()
    return Instance(scheduler, executor, queues, gevent.spawn(scheduler.run), syncer)


@pytest.fixture
def config(tmp_path: Path) -> configmod.Config:
    return replace(
        configmod.load(None, {}),
        log_dir=str(tmp_path / "logs"),
        kill_grace_period=1.0,
        shutdown_timeout=0.2,
        syncer_flush_interval=0.0,  # write at once: no syncer timers for the fake clock to run
    )


def save(instance: Instance, clock: Clock, command: str, schedule: str | None = None) -> JobSpec:
    spec = JobSpec(name="e2e", schedule=schedule, commands=(("sh", "-c", command),))
    msg = SaveJob(spec, clock.now())
    instance.queues.syncer.put(msg)
    return msg.reply.get(timeout=5)


def rows(database: Database) -> list[JobRun]:
    return database.read(lambda: list(JobRun.select().order_by(JobRun.scheduled_at)))


def wait_for(database: Database, check, timeout: float = 8.0) -> list[JobRun]:  # type: ignore[no-untyped-def]
    with gevent.Timeout(timeout, AssertionError("condition not reached")):
        while True:
            found = rows(database)
            if check(found):
                return found
            gevent.sleep(0.05)


def drive(clock: FakeClock, instances: list[Instance], seconds: int) -> None:
    """Advance fake time a second at a time, letting real processes and writes progress."""
    for _ in range(seconds):
        clock.advance(1)
        gevent.sleep(0.005)


def test_it_runs_each_slot_of_a_scheduled_job_exactly_once(database, config) -> None:
    clock = FakeClock(FakeClock().now().replace(year=2026, month=3, day=1, hour=12))
    config = replace(config, loop_interval=1.0)
    one = boot(database, config, clock)
    job = save(one, clock, "echo run $0", "* * * * *")
    one.scheduler.queues.scheduler.put(JobUpserted(job, clock.now()))
    drive(clock, [one], 4 * 60 + 30)
    found = wait_for(
        database, lambda rs: all(r.status == states.SUCCEEDED for r in rs) and len(rs) == 5
    )
    one.stop()
    assert [r.scheduled_at.minute for r in found] == [0, 1, 2, 3, 4]
    assert {(r.exit_code, r.attempt) for r in found} == {(0, 1)}
    logs = list((Path(config.log_dir) / "e2e").glob("*.log"))
    assert len(logs) == 5


def test_it_never_runs_a_slot_twice_with_two_schedulers(database, config) -> None:
    clock = FakeClock(FakeClock().now().replace(year=2026, month=3, day=1, hour=12))
    first = boot(database, config, clock)
    job = save(first, clock, "echo run", "* * * * *")
    second = boot(database, config, clock)
    for inst in (first, second):
        inst.queues.scheduler.put(JobUpserted(job, clock.now()))
    drive(clock, [first, second], 3 * 60 + 30)
    found = wait_for(database, lambda rs: len(rs) == 4 and all(r.status == "succeeded" for r in rs))
    first.stop()
    second.stop()
    assert len({r.scheduled_at for r in found}) == 4
    assert len(list((Path(config.log_dir) / "e2e").glob("*.log"))) == 4


def real(config: configmod.Config) -> configmod.Config:
    return replace(config, loop_interval=0.05)


def run_now(instance: Instance, job: JobSpec, clock: Clock) -> str:
    msg = RunNow(job.id, clock.now())
    instance.queues.scheduler.put(msg)
    return msg.reply.get(timeout=5)


def test_it_records_a_failing_command_as_failed_with_its_exit_code(database, config) -> None:
    clock = RealClock()
    one = boot(database, real(config), clock)
    job = save(one, clock, "echo broken >&2; exit 3")
    one.queues.scheduler.put(JobUpserted(job, clock.now()))
    gevent.sleep(0.1)
    run_id = run_now(one, job, clock)
    (row,) = wait_for(database, lambda rs: rs and rs[0].status in states.TERMINAL)
    one.stop()
    assert (row.run_id, row.status, row.exit_code, row.success) == (run_id, "failed", 3, False)
    assert row.reason == "exit code 3"


def test_it_records_a_cancelled_run_as_killed(database, config) -> None:
    clock = RealClock()
    one = boot(database, real(config), clock)
    job = save(one, clock, "sleep 30")
    one.queues.scheduler.put(JobUpserted(job, clock.now()))
    gevent.sleep(0.1)
    run_id = run_now(one, job, clock)
    wait_for(database, lambda rs: rs and rs[0].status == states.RUNNING)
    one.queues.scheduler.put(CancelRun(run_id, "operator asked", clock.now()))
    (row,) = wait_for(database, lambda rs: rs[0].status in states.TERMINAL)
    one.stop()
    assert row.status == states.KILLED
    assert row.reason == "cancelled: operator asked"


def test_it_adopts_a_running_run_after_a_restart(database, config) -> None:
    clock = RealClock()
    one = boot(database, real(config), clock)
    job = save(one, clock, "echo started; sleep 1; exit 5")
    one.queues.scheduler.put(JobUpserted(job, clock.now()))
    gevent.sleep(0.1)
    run_id = run_now(one, job, clock)
    wait_for(database, lambda rs: rs and rs[0].status == states.RUNNING and rs[0].handle)
    one.stop()  # shutdown_timeout 0.2 s: the run is left running for the next process
    assert rows(database)[0].status == states.RUNNING
    two = boot(database, real(config), clock)
    (row,) = wait_for(database, lambda rs: rs[0].status in states.TERMINAL)
    two.stop()
    assert (row.run_id, row.status, row.exit_code) == (run_id, states.FAILED, 5)
    log = Path(row.handle["log"]).read_text()
    assert log.count("started") == 1


def test_it_applies_a_recovered_runs_env_override_to_its_retry(database, config) -> None:
    clock = RealClock()
    one = boot(database, real(config), clock)
    retry = {"type": "retry", "trigger": "on_failure", "config": {"maxRetries": 1}}
    command = 'sleep 1; echo "greeting=$GREETING"; exit 5'
    spec = parse_job(
        {"name": "e2e", "commands": [["sh", "-c", command]], "actions": [retry]}
        | {"manualRunModifiableFields": ["env"]}
    )
    msg = SaveJob(spec, clock.now())
    one.queues.syncer.put(msg)
    job = msg.reply.get(timeout=5)
    one.queues.scheduler.put(JobUpserted(job, clock.now()))
    gevent.sleep(0.1)
    ask = RunNow(job.id, clock.now(), overrides={"env": {"GREETING": "hi"}})
    one.queues.scheduler.put(ask)
    ask.reply.get(timeout=5)
    wait_for(database, lambda rs: rs and rs[0].status == states.RUNNING and rs[0].handle)
    one.stop()  # attempt 1 is left running; process two adopts it, then retries
    two = boot(database, real(config), clock)
    (row,) = wait_for(database, lambda rs: rs[0].status in states.TERMINAL)
    two.stop()
    assert (row.status, row.attempt, row.overrides) == ("failed", 2, {"env": {"GREETING": "hi"}})
    assert "greeting=hi" in Path(row.handle["log"]).read_text()
