"""Commands reach the scheduling leader whichever replica receives them (issue 14).

The API hands every request for the scheduler loop (run now, cancel, skip next, job
created, changed, paused, resumed or archived) to `send`. On the leader it goes to the local
loop's inbox as before. On a standby it becomes a row of the `commands` table
(migrations/*/007_commands.sql), written before the API answers; the leader's
`CommandReader` takes each pending row, applies it through its loop, and writes the
result; the standby reads the result back and answers its caller with it (the new
run id, or why it was refused). PostgreSQL wakes the reader at once with
`LISTEN/NOTIFY`; elsewhere it polls every `POLL_S`.

Once, across a failover: a row is taken (`taken_by`) before it is applied and done
(`done_at`) after, so a new leader sees the rows its predecessor took but did not
finish. A run-now carries a run id chosen by the sender: a new leader first looks
for that run (the predecessor's claim) and answers it instead of making another,
and the loop answers a repeated delivery with the same run. Job changes are
idempotent (the leader reloads the job). Cancelling twice cancels once. A sender
that gets no answer within `WAIT_S` withdraws its row if no leader took it yet, so
a caller told "not done" can retry without the first request running later.

A skip-next is kept by the loop in memory until its slot comes, so it goes through the
table even on the leader: a new leader re-applies every skip accepted for a slot still
ahead (`replay_skips`, for exactly that slot), and the rows stay until the slot passed.
A skip taken by a leader that died before answering is applied by the next one as usual.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import gevent
import peewee as pw
from gevent.event import AsyncResult, Event

from itinerary.clock import Clock
from itinerary.db import BaseModel, Database, JobRun, JSONField, UTCDateTimeField
from itinerary.ids import new_row_id, new_run_id
from itinerary.messages import CancelRun, JobRemoved, JobUpserted, Queues, RunNow, SkipNext

log = logging.getLogger(__name__)

CHANNEL = "itinerary_commands"
POLL_S = 0.5  # the leader looks for new commands (PostgreSQL: a safety net behind NOTIFY)
ANSWER_POLL_S = 0.1  # a standby looks for its command's result
WAIT_S = 8.0  # then it withdraws the command (the API's own reply timeout is 10 s)
APPLY_TIMEOUT_S = 5.0  # the leader's loop answers within an iteration
KEEP_DONE = timedelta(days=1)
CLEAN_EVERY_S = 3600.0
BATCH = 100


class Command(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    kind = pw.CharField()
    payload = JSONField()
    sender = pw.CharField()
    created_at = UTCDateTimeField()
    taken_by = pw.CharField(null=True)
    done_at = UTCDateTimeField(null=True)
    result = JSONField(null=True)

    class Meta:
        table_name = "commands"


def send(ctx: Any, msg: Any) -> None:
    """Hand `msg` to the scheduling loop, wherever it runs; its `reply` (if any) answers."""
    bus = getattr(ctx, "commands", None)
    if bus is None:
        ctx.queues.scheduler.put(msg)
    else:
        bus.send(msg)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def encode(msg: Any) -> tuple[str, dict[str, Any]]:
    """The command row's kind and payload for a scheduler message."""
    if isinstance(msg, RunNow):
        return "run_now", {
            "job_id": msg.job_id,
            "at": _iso(msg.at),
            "start_at": _iso(msg.start_at),
            "args": None if msg.args is None else list(msg.args),
            "overrides": dict(msg.overrides),
            "trigger": msg.trigger,
            "parent_run_id": msg.parent_run_id,
            "run_id": msg.run_id or new_run_id(),
        }
    if isinstance(msg, CancelRun):
        return "cancel", {"run_id": msg.run_id, "reason": msg.reason}
    if isinstance(msg, SkipNext):
        return "skip_next", {"job_id": msg.job_id, "reason": msg.reason}
    if isinstance(msg, JobUpserted):
        return "job", {"job_id": msg.job.id}
    if isinstance(msg, JobRemoved):
        return "job", {"job_id": msg.job_id}
    raise TypeError(f"no command for {type(msg).__name__}")


class CommandBus:
    """The API's way to the loop: local on the leader, through the table elsewhere."""

    def __init__(self, database: Database, clock: Clock, queues: Queues, leadership: Any):
        self.database = database
        self.clock = clock
        self.queues = queues
        self.leadership = leadership

    def send(self, msg: Any) -> None:
        if self.leadership.leading and not isinstance(msg, SkipNext):
            if self.leadership.fenced.is_set():
                from itinerary.errors import ApiError

                raise ApiError(503, "this replica is stepping down as leader; send it again")
            self.queues.scheduler.put(msg)
            return
        kind, payload = encode(msg)
        command_id = new_row_id()
        self.database.write(self._insert, command_id, kind, payload)
        reply = getattr(msg, "reply", None)
        if reply is not None:
            gevent.spawn(self._answer, command_id, reply)

    def _insert(self, command_id: int, kind: str, payload: dict[str, Any]) -> None:
        writer = self.database.writer
        with writer.atomic():
            Command.insert(
                id=command_id,
                kind=kind,
                payload=payload,
                sender=self.leadership.name,
                created_at=self.clock.now(),
            ).execute(writer)
            if self.database.driver == "postgres":
                writer.execute_sql(f"NOTIFY {CHANNEL}")  # delivered at commit

    def _answer(self, command_id: int, reply: AsyncResult) -> None:
        """Wait for the leader's result; withdraw the command if nobody took it in time."""
        from itinerary.errors import ApiError

        deadline = self.clock.monotonic() + WAIT_S
        withdrawing = False
        while True:
            try:
                row = self.database.read(_result_of, command_id)
            except (pw.PeeweeException, OSError):
                row = None
            if row is not None and row.done_at is not None:
                _deliver(row.result or {}, reply)
                return
            if self.clock.monotonic() >= deadline:
                if withdrawing:
                    reply.set_exception(
                        ApiError(
                            503,
                            "the scheduling leader took the request but did not answer in "
                            "time; it takes effect at most once (the next leader finishes it)",
                        )
                    )
                    return
                withdrawing = True
                if self._withdraw(command_id):
                    reply.set_exception(
                        ApiError(
                            503,
                            f"no scheduling leader answered within {WAIT_S:g}s; "
                            "the request was withdrawn and nothing was done",
                        )
                    )
                    return
                deadline = self.clock.monotonic() + 1.5
            self.clock.sleep(ANSWER_POLL_S)

    def _withdraw(self, command_id: int) -> bool:
        query = Command.update(
            done_at=self.clock.now(), result={"error": "Withdrawn", "message": "no leader took it"}
        ).where((Command.id == command_id) & Command.taken_by.is_null() & Command.done_at.is_null())
        try:
            return bool(self.database.write(query.execute, self.database.writer))
        except (pw.PeeweeException, OSError):
            return False


def _result_of(command_id: int) -> Command | None:
    return Command.select(Command.done_at, Command.result).where(Command.id == command_id).first()


def _deliver(result: dict[str, Any], reply: AsyncResult) -> None:
    from itinerary.errors import ApiError

    error, message = result.get("error"), result.get("message") or ""
    if error is None:
        reply.set(result.get("value"))
    elif error == "KeyError":
        reply.set_exception(KeyError(message))
    elif error == "ValueError":
        reply.set_exception(ValueError(message))
    else:
        reply.set_exception(ApiError(503, f"the scheduling leader could not apply it: {message}"))


class CommandReader:
    """On the leader: apply pending commands through the loop's inbox, write the results."""

    def __init__(self, database: Database, clock: Clock, queues: Queues, name: str) -> None:
        self.database = database
        self.clock = clock
        self.queues = queues
        self.name = name
        self.wake = Event()
        self._results: dict[int, dict[str, Any]] = {}  # applied, result not written yet
        self._cleaned = float("-inf")

    def run(self) -> None:
        listener = gevent.spawn(self._listen) if self.database.driver == "postgres" else None
        try:
            self.replay_skips()
            while True:
                self.wake.clear()
                try:
                    while self.apply_pending() == BATCH:
                        pass
                    self._clean()
                except (pw.PeeweeException, OSError) as exc:
                    log.warning("cannot read or answer commands (will retry): %s", exc)
                self.clock.wait(self.wake, POLL_S)
        finally:
            if listener is not None:
                listener.kill()

    def apply_pending(self) -> int:
        """Apply the pending commands (oldest first, at most BATCH); how many were seen."""
        rows = self.database.read(_pending)
        for row in rows:
            result = self._results.get(row.id)
            if result is None:
                if not self.database.write(self._take, row.id):
                    continue  # withdrawn by its sender meanwhile
                result = self._results[row.id] = self._apply(row)
            self.database.write(self._finish, row.id, result)
            self._results.pop(row.id, None)
        return len(rows)

    def replay_skips(self) -> int:
        """Re-apply the skips earlier leaders accepted for slots still ahead; how many."""
        now = self.clock.now()
        replayed = 0
        for row in self.database.read(_accepted_skips, None):
            slot = _time((row.result or {}).get("value"))
            if slot is not None and slot > now:
                p = row.payload
                self.queues.scheduler.put(SkipNext(p["job_id"], p["reason"], now, slot=slot))
                replayed += 1
        return replayed

    def _take(self, command_id: int) -> int:
        return (
            Command.update(taken_by=self.name)
            .where((Command.id == command_id) & Command.done_at.is_null())
            .execute(self.database.writer)
        )

    def _finish(self, command_id: int, result: dict[str, Any]) -> None:
        Command.update(done_at=self.clock.now(), result=result).where(
            Command.id == command_id
        ).execute(self.database.writer)

    def _apply(self, row: Command) -> dict[str, Any]:
        from itinerary import jobstore

        p, now = row.payload, self.clock.now()
        if row.kind == "job":
            job = self.database.read(jobstore.get_job, p["job_id"])
            if job is None or job.archived_at is not None:
                self.queues.scheduler.put(JobRemoved(p["job_id"], now))
            else:
                self.queues.scheduler.put(JobUpserted(job, now))
            return {"value": None}
        if row.kind == "run_now":
            again = row.taken_by not in (None, self.name)
            if again and self.database.read(_run_exists, p["run_id"]):
                return {"value": p["run_id"]}  # the previous leader made it already
            msg: Any = RunNow(
                job_id=p["job_id"],
                at=_time(p["at"]) or now,
                start_at=_time(p["start_at"]),
                args=None if p["args"] is None else tuple(p["args"]),
                overrides=p["overrides"],
                trigger=p["trigger"],
                parent_run_id=p["parent_run_id"],
                run_id=p["run_id"],
            )
        elif row.kind == "cancel":
            msg = CancelRun(p["run_id"], p["reason"], now)
        elif row.kind == "skip_next":
            msg = SkipNext(p["job_id"], p["reason"], now)
        else:
            return {"error": "Unknown", "message": f"unknown command kind {row.kind!r}"}
        self.queues.scheduler.put(msg)
        try:
            value = msg.reply.get(timeout=APPLY_TIMEOUT_S)
            return {"value": _iso(value) if isinstance(value, datetime) else value}
        except gevent.Timeout:
            return {"error": "Timeout", "message": "the scheduler loop did not answer"}
        except (KeyError, ValueError) as exc:
            return {"error": type(exc).__name__, "message": str(exc.args[0]) if exc.args else ""}
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc)}

    def _clean(self) -> None:
        if self.clock.monotonic() - self._cleaned < CLEAN_EVERY_S:
            return
        self._cleaned = self.clock.monotonic()
        now = self.clock.now()
        before = now - KEEP_DONE
        query = Command.delete().where((Command.done_at < before) & (Command.kind != "skip_next"))
        self.database.write(query.execute, self.database.writer)
        passed = [  # a skip is kept until its slot passed (or it was refused)
            row.id
            for row in self.database.read(_accepted_skips, before)
            if (_time((row.result or {}).get("value")) or now) <= now
        ]
        if passed:
            query = Command.delete().where(Command.id.in_(passed))
            self.database.write(query.execute, self.database.writer)

    def _listen(self) -> None:
        """PostgreSQL: wake the reader on every NOTIFY (a dedicated connection)."""
        import psycopg2
        from gevent.select import select

        d = self.database.dsn
        while True:
            conn = None
            try:
                opts = {k: v for k, v in d.options if k != "connect_timeout"}
                conn = psycopg2.connect(
                    host=d.host,
                    port=d.port or 5432,
                    user=d.user,
                    password=d.password,
                    dbname=d.database,
                    connect_timeout=10,
                    **opts,
                )
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self.wake.set()  # catch up with what came while not listening
                while True:
                    select([conn], [], [], 60)
                    conn.poll()
                    if conn.notifies:
                        conn.notifies.clear()
                        self.wake.set()
            except (psycopg2.Error, OSError) as exc:
                log.warning("command notifications interrupted (polling meanwhile): %s", exc)
            finally:
                if conn is not None:
                    conn.close()
            self.clock.sleep(1.0)


def _pending() -> list[Command]:
    return list(Command.select().where(Command.done_at.is_null()).order_by(Command.id).limit(BATCH))


def _accepted_skips(done_before: datetime | None) -> list[Command]:
    query = Command.select().where((Command.kind == "skip_next") & Command.done_at.is_null(False))
    if done_before is not None:
        query = query.where(Command.done_at < done_before)
    return list(query)


def _run_exists(run_id: str) -> bool:
    return JobRun.select(JobRun.run_id).where(JobRun.run_id == run_id).exists()
