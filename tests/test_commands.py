"""The commands table: a standby's request reaches the leader once, across a failover too."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import gevent

from itinerary import jobstore
from itinerary.commands import Command, CommandBus, CommandReader
from itinerary.db import JobRun
from itinerary.jobs import parse_job
from itinerary.messages import CancelRun, RunNow, SkipNext

RUN_ID = "rabcdefghijklmno"


def _command(database, clock, taken_by: str | None, job_id: int = 7) -> None:
    payload = {
        "job_id": job_id,
        "at": clock.now().isoformat(),
        "start_at": None,
        "args": None,
        "overrides": {},
        "trigger": "manual",
        "parent_run_id": None,
        "run_id": RUN_ID,
    }
    row = {"id": 1, "kind": "run_now", "payload": payload, "sender": "b", "created_at": clock.now()}
    database.write(lambda: Command.insert(taken_by=taken_by, **row).execute(database.writer))


def _await_reply(clock, msg, polls: int) -> None:
    """Let the sender poll its command row (each poll a fake-clock step and real I/O)."""
    for _ in range(polls):
        clock.advance(0.1)
        gevent.sleep(0.01)
        if msg.reply.ready():
            return


def _done(database) -> Command:
    return database.read(lambda: Command.get_by_id(1))


def test_it_answers_the_run_a_dead_leader_made_instead_of_making_another(
    database, clock, queues
) -> None:
    spec = parse_job({"name": "job", "commands": [["true"]]})
    now = clock.now()
    job = database.write(lambda: jobstore.save_job(database.writer, spec, now))
    _command(database, clock, taken_by="old-leader", job_id=job.id)
    run = {"job_id": job.id, "scheduled_at": now, "run_id": RUN_ID, "status": "scheduled"}
    database.write(
        lambda: JobRun.insert(created_at=now, updated_at=now, **run).execute(database.writer)
    )
    assert CommandReader(database, clock, queues, "new-leader").apply_pending() == 1
    assert queues.scheduler.empty()  # not applied a second time
    assert _done(database).result == {"value": RUN_ID} and _done(database).done_at is not None


def test_it_applies_a_command_the_dead_leader_took_but_never_carried_out(
    database, clock, queues
) -> None:
    _command(database, clock, taken_by="old-leader")
    reader = CommandReader(database, clock, queues, "new-leader")
    applying = gevent.spawn(reader.apply_pending)
    msg = queues.scheduler.get(timeout=5)
    assert isinstance(msg, RunNow) and msg.run_id == RUN_ID and msg.job_id == 7
    msg.reply.set(msg.run_id)
    assert applying.get(timeout=5) == 1
    row = _done(database)
    assert row.taken_by == "new-leader" and row.result == {"value": RUN_ID}
    assert reader.apply_pending() == 0  # done: never applied again


def test_it_carries_the_refusal_back_to_the_standby(database, clock, queues) -> None:
    leadership = SimpleNamespace(leading=False, name="b", fenced=gevent.event.Event())
    bus = CommandBus(database, clock, queues, leadership)
    msg = CancelRun("rzzzzzzzzzzzzzzz", "no longer needed", clock.now())
    bus.send(msg)
    assert queues.scheduler.empty()  # a standby has no loop: it went to the table
    reader = CommandReader(database, clock, queues, "leader")
    applying = gevent.spawn(reader.apply_pending)
    queues.scheduler.get(timeout=5).reply.set(False)  # the leader's loop: not active
    assert applying.get(timeout=5) == 1
    _await_reply(clock, msg, polls=3)
    assert msg.reply.get(timeout=5) is False


def test_it_withdraws_a_command_no_leader_took(database, clock, queues) -> None:
    leadership = SimpleNamespace(leading=False, name="b", fenced=gevent.event.Event())
    msg = RunNow(job_id=7, at=datetime.now(clock.now().tzinfo))
    CommandBus(database, clock, queues, leadership).send(msg)
    _await_reply(clock, msg, polls=100)
    assert msg.reply.ready() and msg.reply.exception.status == 503
    assert "withdrawn" in str(msg.reply.exception)
    assert CommandReader(database, clock, queues, "late-leader").apply_pending() == 0
    assert queues.scheduler.empty()


def test_it_carries_a_skip_next_and_its_slot_between_replicas(database, clock, queues) -> None:
    leadership = SimpleNamespace(leading=False, name="b", fenced=gevent.event.Event())
    msg = SkipNext(7, "holiday", clock.now())
    CommandBus(database, clock, queues, leadership).send(msg)
    reader = CommandReader(database, clock, queues, "leader")
    applying = gevent.spawn(reader.apply_pending)
    applied = queues.scheduler.get(timeout=5)
    assert isinstance(applied, SkipNext) and (applied.job_id, applied.reason) == (7, "holiday")
    applied.reply.set(slot := clock.now().replace(minute=5))
    assert applying.get(timeout=5) == 1
    _await_reply(clock, msg, polls=20)
    assert datetime.fromisoformat(msg.reply.get(timeout=5)) == slot


def test_it_records_a_skip_on_the_leader_too_and_a_new_leader_replays_it(
    database, clock, queues
) -> None:
    leadership = SimpleNamespace(leading=True, name="a", fenced=gevent.event.Event())
    CommandBus(database, clock, queues, leadership).send(SkipNext(7, "freeze", clock.now()))
    assert queues.scheduler.empty()  # kept in the table, not only in the loop's memory
    applying = gevent.spawn(CommandReader(database, clock, queues, "a").apply_pending)
    queues.scheduler.get(timeout=5).reply.set(ahead := clock.now().replace(minute=5))
    applying.get(timeout=5)
    later = CommandReader(database, clock, queues, "b")  # a dies; b leads
    assert later.replay_skips() == 1
    replayed = queues.scheduler.get(timeout=5)
    assert (replayed.job_id, replayed.reason, replayed.slot) == (7, "freeze", ahead)
    clock.set(ahead)
    assert later.replay_skips() == 0  # the slot came: nothing left to skip


def test_it_keeps_an_accepted_skip_until_its_slot_passed(database, clock, queues) -> None:
    now = clock.now()
    for row_id, kind, value in ((1, "skip_next", now + timedelta(days=3)), (2, "cancel", None)):
        result = {"value": value.isoformat() if value else False}
        row = {"id": row_id, "kind": kind, "payload": {}, "sender": "b", "created_at": now}
        database.write(
            lambda r=row, v=result: Command.insert(done_at=now, result=v, **r).execute(
                database.writer
            )
        )
    clock.advance(timedelta(days=2).total_seconds())
    CommandReader(database, clock, queues, "a")._clean()
    assert [c.id for c in database.read(lambda: list(Command.select()))] == [1]
    clock.advance(timedelta(days=2).total_seconds())
    CommandReader(database, clock, queues, "a")._clean()
    assert database.read(lambda: list(Command.select())) == []
