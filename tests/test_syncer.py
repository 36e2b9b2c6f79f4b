"""The syncer on all three databases: batching, merging, acknowledgements, faults."""

from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import UTC, datetime, timedelta

import gevent
import peewee as pw
import pytest
from gevent.queue import Queue

from itinerary import config as configmod
from itinerary import jobstore, messages, states
from itinerary.clock import FakeClock, settle
from itinerary.db import Database
from itinerary.errors import ConfigError
from itinerary.jobs import parse_job
from itinerary.models import ConstraintViolation, JobRun, RunAttempt
from itinerary.syncer import Syncer, thresholds
from tests.dbfaults import Outage, kill_connections

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_config(**changes):
    return dataclasses.replace(configmod.load(None, {}), **changes)


def start(database, clock, **changes):
    """A running syncer with its inbox and stats inbox."""
    inbox, stats = Queue(maxsize=changes.pop("inbox", 1000)), Queue()
    syncer = Syncer(inbox, database, clock, stats, make_config(**changes))
    return syncer, gevent.spawn(syncer.run)


def wait(result, seconds=10):
    """Real I/O is involved: wait for a reply without advancing the fake clock."""
    return result.get(timeout=seconds)


def save_job(database, name="job"):
    spec = parse_job({"name": name, "commands": [["true"]]})
    return database.write(lambda: jobstore.save_job(database.writer, spec, T0))


def claim(job_id, minute=0, run_id=None, status=states.SCHEDULED):
    return messages.ClaimSlot(
        run_id=run_id or f"r{job_id:05d}m{minute:09d}",
        job_id=job_id,
        scheduled_at=T0 + timedelta(minutes=minute),
        trigger="schedule",
        status=status,
        at=T0,
    )


def flush(syncer_inbox, clock):
    msg = messages.Flush(clock.now())
    syncer_inbox.put(msg)
    return wait(msg.reply)


def run_row(database, run_id):
    return database.read(lambda: JobRun.get(JobRun.run_id == run_id))


def stop(inbox, greenlet):
    inbox.put(messages.ShutDown())
    greenlet.join(timeout=10)
    assert greenlet.dead and greenlet.successful()


def test_it_claims_a_slot_once(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    first, second = claim(job.id, run_id="rfirst"), claim(job.id, run_id="rsecond")
    syncer.inbox.put(first)
    syncer.inbox.put(second)
    # It should answer the first claim True and the second, for the same slot, False.
    assert wait(first.reply) is True
    assert wait(second.reply) is False
    assert run_row(database, "rfirst").status == states.SCHEDULED
    stop(syncer.inbox, g)


def test_it_answers_true_to_a_retried_claim(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    for _ in range(2):
        msg = claim(job.id, run_id="rsame")
        syncer.inbox.put(msg)
        # It should treat its own slot row as claimed (the first reply may have been lost).
        assert wait(msg.reply) is True
    stop(syncer.inbox, g)


def test_it_merges_updates_in_order(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rrun"))
    t = T0 + timedelta(seconds=1)
    for i, status in enumerate((states.STARTING, states.RUNNING, states.FAILED)):
        at = t + timedelta(seconds=i)
        syncer.inbox.put(messages.RunUpdate("rrun", at, status=status, started_at=t))
    syncer.inbox.put(messages.RunUpdate("rrun", t + timedelta(seconds=9), exit_code=3))
    flush(syncer.inbox, clock)
    row = run_row(database, "rrun")
    assert (row.status, row.success, row.exit_code, row.started_at) == ("failed", False, 3, t)
    assert row.updated_at == t + timedelta(seconds=9)
    stop(syncer.inbox, g)


def test_it_never_leaves_a_terminal_state_or_goes_back(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rterm"))
    t = T0 + timedelta(seconds=5)
    syncer.inbox.put(messages.RunUpdate("rterm", t, status=states.SUCCEEDED))
    flush(syncer.inbox, clock)
    # Separate flushes, so the rules are checked against the stored row too.
    syncer.inbox.put(messages.RunUpdate("rterm", t + timedelta(1), status=states.RUNNING))
    syncer.inbox.put(messages.RunUpdate("rterm", t + timedelta(2), status=states.FAILED))
    syncer.inbox.put(messages.RunUpdate("rterm", t - timedelta(1), reason="stale"))
    flush(syncer.inbox, clock)
    row = run_row(database, "rterm")
    assert (row.status, row.success, row.reason) == ("succeeded", True, None)
    stop(syncer.inbox, g)


def test_it_refuses_to_go_backwards_in_a_batch(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rback"))
    syncer.inbox.put(messages.RunUpdate("rback", T0 + timedelta(seconds=2), status="running"))
    syncer.inbox.put(messages.RunUpdate("rback", T0 + timedelta(seconds=3), status="waiting"))
    flush(syncer.inbox, clock)
    assert run_row(database, "rback").status == states.RUNNING
    stop(syncer.inbox, g)


def test_it_keeps_what_a_later_update_leaves_out(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rkeep"))
    t = T0 + timedelta(seconds=1)
    first = dict(attempt=1, started_at=t, executor="local", handle={"pid": 42})
    syncer.inbox.put(messages.RunUpdate("rkeep", t, "running", behind_schedule=True, **first))
    flush(syncer.inbox, clock)
    # A later flush whose one update sets none of those: each should keep its stored value.
    syncer.inbox.put(messages.RunUpdate("rkeep", t + timedelta(seconds=1), reason="slow"))
    flush(syncer.inbox, clock)
    row = run_row(database, "rkeep")
    kept = (row.status, row.started_at, row.executor, row.handle, row.behind_schedule)
    assert kept == ("running", t, "local", {"pid": 42}, True) and row.reason == "slow"
    attempt = database.read(lambda: RunAttempt.get(RunAttempt.run_id == "rkeep"))
    assert (attempt.status, attempt.started_at, attempt.handle) == ("running", t, {"pid": 42})
    stop(syncer.inbox, g)


def test_it_keeps_one_row_per_attempt(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock)
    syncer.inbox.put(claim(job.id, run_id="rretry"))
    t = T0 + timedelta(seconds=1)
    syncer.inbox.put(messages.RunUpdate("rretry", t, status="running", attempt=1, started_at=t))
    syncer.inbox.put(
        messages.RunUpdate("rretry", t, attempt=1, exit_code=1, attempt_status="failed")
    )
    syncer.inbox.put(messages.RunUpdate("rretry", t, attempt=2, started_at=t, handle={"pid": 7}))
    syncer.inbox.put(messages.RunUpdate("rretry", t, status="succeeded", attempt=2, exit_code=0))
    flush(syncer.inbox, clock)
    attempts = database.read(
        lambda: [(a.attempt, a.status, a.exit_code, a.handle) for a in RunAttempt.select()]
    )
    assert sorted(attempts) == [(1, "failed", 1, None), (2, "succeeded", 0, {"pid": 7})]
    assert run_row(database, "rretry").attempt == 2
    stop(syncer.inbox, g)


def test_it_saves_and_archives_jobs_with_replies(database: Database, clock: FakeClock):
    syncer, g = start(database, clock)
    msg = messages.SaveJob(parse_job({"name": "api-job", "commands": [["true"]]}), T0)
    syncer.inbox.put(msg)
    saved = wait(msg.reply)
    assert database.read(jobstore.get_job, saved.id).name == "api-job"
    clash = messages.SaveJob(parse_job({"name": "api-job", "commands": [["true"]]}), T0)
    syncer.inbox.put(clash)
    # It should hand the sender jobstore.Conflict and keep going.
    with pytest.raises(jobstore.Conflict):
        wait(clash.reply)
    archive = messages.ArchiveJob(saved.id, T0)
    syncer.inbox.put(archive)
    assert wait(archive.reply) is True
    stop(syncer.inbox, g)


def test_it_refuses_a_stale_job_update(database: Database, clock: FakeClock):
    saved = save_job(database, "stale")
    syncer, g = start(database, clock)
    changed = dataclasses.replace(saved, description="new")
    msg = messages.SaveJob(changed, T0, expected_updated_at=T0 - timedelta(seconds=1))
    syncer.inbox.put(msg)
    with pytest.raises(jobstore.Conflict, match="reload"):
        wait(msg.reply)
    stop(syncer.inbox, g)


def test_it_parses_per_kind_thresholds():
    limits = thresholds(make_config(syncer_thresholds="runs=1000/2s, stats=5/1m"))
    assert (limits["runs"].size, limits["runs"].interval) == (1000, 2.0)
    assert limits["stats"].interval == 60.0
    assert limits["claims"].interval == 0.0
    with pytest.raises(ConfigError, match="kind=size/interval"):
        thresholds(make_config(syncer_thresholds="bogus=1/1s"))


def test_it_writes_everything_pending_on_shutdown(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock, syncer_flush_interval=3600.0)
    syncer.inbox.put(claim(job.id, run_id="rshut"))
    for minute in range(1, 50):
        syncer.inbox.put(claim(job.id, minute))
    syncer.inbox.put(messages.RunUpdate("rshut", T0 + timedelta(1), status="running"))
    settle()
    stop(syncer.inbox, g)
    assert database.read(lambda: JobRun.select().count()) == 50
    assert run_row(database, "rshut").status == states.RUNNING


# --- faults ------------------------------------------------------------------------------

RUNS = 2000  # five updates each: 10,000 RunUpdates


def stream(inbox, job_id, runs=range(RUNS)):
    """Claims and five updates per run, the last ones carrying the final values."""
    for n in runs:
        rid, t = f"rs{n:010d}", T0 + timedelta(seconds=n)
        inbox.put(claim(job_id, n, run_id=rid))
        inbox.put(messages.RunUpdate(rid, t + timedelta(1), status="starting", attempt=1))
        inbox.put(messages.RunUpdate(rid, t + timedelta(2), status="running", started_at=t))
        inbox.put(messages.RunUpdate(rid, t + timedelta(3), behind_schedule=True))
        inbox.put(messages.RunUpdate(rid, t + timedelta(4), status="succeeded", exit_code=0))
        inbox.put(messages.RunUpdate(rid, t + timedelta(5), reason="done", completed_at=t))


def assert_all_final(database: Database) -> None:
    rows = database.read(
        lambda: list(
            JobRun.select(
                JobRun.run_id,
                JobRun.status,
                JobRun.reason,
                JobRun.exit_code,
                JobRun.behind_schedule,
                JobRun.completed_at,
            ).tuples()
        )
    )
    assert len(rows) == RUNS
    final = {(r[1], r[2], r[3], bool(r[4])) for r in rows}
    assert final == {("succeeded", "done", 0, True)}
    assert all(r[5] == T0 + timedelta(seconds=int(r[0][2:])) for r in rows)
    assert database.read(lambda: RunAttempt.select().count()) == RUNS


def drive(clock: FakeClock, done) -> None:
    """Move fake time (batch intervals, retry backoff) while real I/O goes on."""
    with gevent.Timeout(40):
        while not done():
            clock.advance(0.25)
            gevent.sleep(0.002)


def test_it_loses_nothing_when_connections_are_killed(database: Database, clock: FakeClock):
    if database.driver == "sqlite":
        pytest.skip("SQLite has no connections to kill; see the outage test")
    job = save_job(database)
    syncer, g = start(database, clock, inbox=500)
    feeder = gevent.spawn(stream, syncer.inbox, job.id)
    kills = []

    def killer():
        # Often enough to hit flushes mid-transaction, seldom enough to let some commit.
        while not feeder.dead and len(kills) < 40:
            kills.append(kill_connections(database))
            gevent.sleep(0.05)

    k = gevent.spawn(killer)
    drive(clock, lambda: feeder.dead and k.dead and not syncer.pending)
    stop(syncer.inbox, g)
    assert sum(kills) > 0 and syncer.poison_count == 0
    fresh = Database(database.dsn)  # the fixture's own pooled connections were killed too
    assert_all_final(fresh)
    fresh.close()


def test_it_loses_nothing_while_the_database_is_down(database: Database, clock: FakeClock):
    job = save_job(database)
    outage = Outage(database)
    syncer, g = start(outage.database, clock, inbox=500)
    outage.cut()  # down from the start, so the first flushes must fail
    feeder = gevent.spawn(stream, syncer.inbox, job.id)
    unready = []

    def flap():
        while not feeder.dead or syncer.pending:
            while syncer.ready()[0] and (not feeder.dead or syncer.pending):
                gevent.sleep(0.005)  # the test's drive() moves the clock meanwhile
            unready.append(syncer.ready())
            gevent.sleep(0.05)
            outage.restore()
            gevent.sleep(0.2)
            outage.cut()
        outage.restore()

    f = gevent.spawn(flap)
    drive(clock, lambda: f.dead)
    stop(syncer.inbox, g)
    # It should have said why it was unready, and be ready again once the database is back.
    assert not unready[0][0] and "failing since" in unready[0][1]
    assert syncer.ready() == (True, "ok") and syncer.poison_count == 0
    outage.close()
    assert_all_final(Database(database.dsn) if database.driver != "sqlite" else database)


# --- triggers, atomicity, poison, backpressure ---------------------------------------------


def violation(n, constraint="maxExpectedRunTime"):
    return messages.ViolationRecord(id=n + 1, run_id=f"rv{n:014d}", constraint=constraint, at=T0)


def count(database, model):
    return database.read(lambda: model.select().count())


def eventually(check, seconds=10):
    with gevent.Timeout(seconds):
        while not check():
            gevent.sleep(0.01)


def test_it_flushes_when_a_batch_is_full(database: Database, clock: FakeClock):
    syncer, g = start(database, clock, syncer_batch_size=5, syncer_flush_interval=3600.0)
    for n in range(4):
        syncer.inbox.put(violation(n))
    settle()
    # It should hold four rows (no time passes), and write all five when the fifth comes.
    assert len(syncer.batches["violations"]) == 4
    syncer.inbox.put(violation(4))
    eventually(lambda: count(database, ConstraintViolation) == 5)
    stop(syncer.inbox, g)


def test_it_flushes_when_a_batch_is_old_enough(database: Database, clock: FakeClock):
    syncer, g = start(database, clock, syncer_batch_size=1000, syncer_flush_interval=2.0)
    for n in range(3):
        syncer.inbox.put(violation(n))
    clock.advance(1.9)
    assert len(syncer.batches["violations"]) == 3
    clock.advance(0.2)
    eventually(lambda: count(database, ConstraintViolation) == 3)
    stop(syncer.inbox, g)


def test_it_reports_how_long_rows_waited(database: Database, clock: FakeClock):
    syncer, g = start(database, clock, syncer_batch_size=1000, syncer_flush_interval=2.0)
    syncer.inbox.put(dataclasses.replace(violation(0), at=T0 - timedelta(seconds=1)))
    settle()
    clock.advance(2.5)
    eventually(lambda: not syncer.stats_inbox.empty())
    flushed = syncer.stats_inbox.get()
    # It should tell the stats collector how long the row sat in the inbox and in its batch.
    assert (flushed.kind, flushed.rows, flushed.ok) == ("violations", 1, True)
    assert flushed.time_in_inbox_s == (1.0,)
    assert flushed.time_in_queue_s == (pytest.approx(2.0),)
    stop(syncer.inbox, g)


def test_it_rolls_back_a_failed_batch_and_retries_it(
    database: Database, clock: FakeClock, monkeypatch
):
    job = save_job(database)
    seen = []
    write = database.write

    def spy(fn, *args):
        try:
            return write(fn, *args)
        except Exception:
            seen.append((count(database, JobRun), count(database, ConstraintViolation)))
            raise

    monkeypatch.setattr(database, "write", spy)
    syncer, g = start(
        database, clock, syncer_flush_interval=3600.0, syncer_thresholds="claims=100/1h"
    )
    good = claim(job.id, run_id="rgood")
    syncer.inbox.put(good)
    syncer.inbox.put(messages.RunUpdate("rgood", T0, status="running"))
    syncer.inbox.put(violation(1))
    # An action run pointing at a violation that does not exist: the foreign key fails
    # after the claim, the update and the violation were sent in the same transaction.
    bad = messages.ActionRunRecord(7, "rgood", "retry", "on_failure", T0, True, violation_id=99)
    syncer.inbox.put(bad)
    flush(syncer.inbox, clock)
    # It should have left nothing half-written, then written all but the poison row.
    assert seen[0] == (0, 0)
    assert wait(good.reply) is True and run_row(database, "rgood").status == "running"
    assert count(database, ConstraintViolation) == 1
    assert syncer.poison_count == 1 and syncer.poisoned[0].msg is bad
    stop(syncer.inbox, g)


def test_it_answers_a_poison_claim_with_the_error(database: Database, clock: FakeClock):
    job = save_job(database)
    syncer, g = start(database, clock, syncer_thresholds="claims=100/1h")
    good, bad = claim(job.id, run_id="rok"), claim(job.id + 1000, run_id="rnojob")
    syncer.inbox.put(good)
    syncer.inbox.put(bad)
    syncer.inbox.put(messages.RunUpdate("rnojob", T0, status="running"))
    flush(syncer.inbox, clock)
    # It should hand the sender of the unwritable row its exception, and write the rest.
    assert wait(good.reply) is True
    with pytest.raises(pw.IntegrityError):
        wait(bad.reply)
    assert syncer.poison_count == 2  # the claim and the update for its missing run
    assert "no run" in syncer.poisoned[1].error
    assert syncer.ready() == (True, "ok")
    stop(syncer.inbox, g)


def test_it_blocks_senders_when_full_and_drops_nothing(database: Database, clock: FakeClock):
    outage = Outage(database)
    syncer, g = start(outage.database, clock, inbox=5, syncer_inbox_size=5)
    outage.cut()
    feeder = gevent.spawn(lambda: [syncer.inbox.put(violation(n)) for n in range(30)])
    eventually(lambda: syncer.inbox.full() and syncer.pending == 5)
    eventually(lambda: not syncer.ready()[0])
    clock.advance(1)
    # It should keep the sender waiting: 5 rows held, 5 in the inbox, the rest not sent yet.
    assert not feeder.dead and syncer.inbox.full()
    outage.restore()
    drive(clock, lambda: feeder.dead and not syncer.pending)
    stop(syncer.inbox, g)
    outage.close()
    assert count(database, ConstraintViolation) == 30


def test_it_keeps_the_hub_free_while_writing_heavily(database: Database, clock: FakeClock):
    # A ticker stands in for the scheduler loop: it asks to wake every 10 ms (real time),
    # 50 times, while runs stream in as fast as the syncer takes them.
    job = save_job(database)
    syncer, g = start(database, clock, inbox=10000)
    late = []

    def ticker():
        last = time.perf_counter()
        while len(late) < 50:
            gevent.sleep(0.01)
            now = time.perf_counter()
            late.append(now - last - 0.01)
            last = now

    t = gevent.spawn(ticker)
    with gevent.Timeout(30):
        for first in itertools.count(0, 200):
            if t.dead:
                break
            stream(syncer.inbox, job.id, range(first, first + 200))
    flush(syncer.inbox, clock)
    stop(syncer.inbox, g)
    late.sort()
    # It should let the ticker run on time. Generous bounds, as the test machine is shared
    # (a flush blocking the hub would stall it for a whole batch of thousands of rows).
    assert count(database, JobRun) >= 1000
    assert late[int(len(late) * 0.95)] < 0.05 and late[-1] < 0.25
