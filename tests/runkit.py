"""One Itinerary for constraint and action tests, and an HTTP endpoint for hooks and webhooks.

`Kit` runs the real syncer on the test's database, the real scheduler loop, the
webhook handler and an executor (local processes unless told otherwise). Policy
time runs on a FakeClock the kit moves a second per step while real processes,
sockets and the database progress in real time, bounded (`drive`). `Endpoint`
is a real pywsgi server on 127.0.0.1 answering a script of statuses and
recording what it was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from gevent.queue import Queue

from itinerary import config as configmod
from itinerary import states
from itinerary.clock import FakeClock
from itinerary.db import Database
from itinerary.executors.local import LocalExecutor
from itinerary.jobs import ACTION_TYPES, CONSTRAINT_TYPES, JobSpec, parse_job
from itinerary.messages import Flush, JobUpserted, Queues, RunNow, SaveJob, ShutDown
from itinerary.models import ActionRun, ConstraintViolation, JobRun, RunAttempt
from itinerary.scheduler import Scheduler
from itinerary.syncer import Syncer
from itinerary.webhooks.handler import WebhookHandler

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAIT = 30.0  # real seconds for anything crossing a process, a socket or the database
ACTION_NAMES = {v: k for k, v in ACTION_TYPES.items()}
CONSTRAINT_NAMES = {v: k for k, v in CONSTRAINT_TYPES.items()}


def kit_config(tmp_path: Path, **changes: Any) -> configmod.Config:
    return replace(
        configmod.load(None, {}),
        log_dir=str(tmp_path / "logs"),
        kill_grace_period=1.0,
        shutdown_timeout=0.2,
        syncer_flush_interval=0.0,  # write at once: no syncer timers for the fake clock
        **changes,
    )


@dataclass
class Kit:
    database: Database
    config: configmod.Config
    clock: FakeClock = field(default_factory=lambda: FakeClock(START))
    executor: Any = None
    queues: Queues = field(default_factory=lambda: Queues(Queue(), Queue(1000), Queue(), Queue()))

    def __post_init__(self) -> None:
        q = self.queues
        self.executor = self.executor or LocalExecutor(self.config, self.clock)
        syncer = Syncer(q.syncer, self.database, self.clock, q.stats, self.config)
        hooks = WebhookHandler(q.webhooks, q.syncer, q.stats, self.clock, self.config)
        self.scheduler = Scheduler(self.config, q, self.clock, self.executor, self.database)
        self.scheduler.start_up()
        self.greenlets = [gevent.spawn(c.run) for c in (syncer, hooks, self.scheduler)]

    def job(self, name: str = "j", command: str = "true", **fields: Any) -> JobSpec:
        """Define a job (manual-only unless a schedule is given) and tell the loop."""
        body = {"name": name, "commands": [["sh", "-c", command]], **fields}
        msg = SaveJob(parse_job(body), self.clock.now())
        self.queues.syncer.put(msg)
        job = msg.reply.get(timeout=WAIT)
        self.queues.scheduler.put(JobUpserted(job, self.clock.now()))
        return job

    def run(self, job: JobSpec, **fields: Any) -> str:
        """Ask for a manual run now; its run id."""
        msg = RunNow(job.id or 0, self.clock.now(), **fields)
        self.queues.scheduler.put(msg)
        return self.drive(lambda: msg.reply.ready() and msg.reply.get())

    def drive(self, check: Callable[[], Any], what: str = "condition") -> Any:
        """Move fake time a second per step, letting real work progress, until `check()`."""
        with gevent.Timeout(WAIT, AssertionError(f"{what} not reached")):
            while True:
                found = check()
                if found:
                    return found
                self.clock.advance(1)
                gevent.sleep(0.01)

    def final(self, run_id: str) -> JobRun:
        """The run once it reached a final state (and its actions were written)."""
        row = self.drive(lambda: self.row(run_id, final=True), f"a final state of {run_id}")
        self.flush()
        return row

    def row(self, run_id: str, final: bool = False) -> JobRun | None:
        found = self.database.read(lambda: JobRun.get_or_none(JobRun.run_id == run_id))
        if final and (found is None or found.status not in states.TERMINAL):
            return None
        return found

    def status(self, run_id: str) -> str | None:
        """The run's state, None until its claim is written."""
        found = self.row(run_id)
        return None if found is None else found.status

    def runs(self, job: JobSpec) -> list[JobRun]:
        query = JobRun.select().where(JobRun.job_id == job.id).order_by(JobRun.scheduled_at)
        return self.database.read(lambda: list(query))

    def violations(self, run_id: str) -> list[ConstraintViolation]:
        query = ConstraintViolation.select().where(ConstraintViolation.run_id == run_id)
        return self.database.read(lambda: list(query.order_by(ConstraintViolation.id)))

    def violated(self, run_id: str) -> list[str]:
        return [CONSTRAINT_NAMES[v.constraint_type_id] for v in self.violations(run_id)]

    def actions(self, run_id: str) -> list[ActionRun]:
        query = ActionRun.select().where(ActionRun.run_id == run_id)
        return self.database.read(lambda: list(query.order_by(ActionRun.executed_at, ActionRun.id)))

    def taken(self, run_id: str) -> list[tuple[str, str, bool]]:
        """(action, trigger, success) of each action run of `run_id`."""
        return [
            (ACTION_NAMES[a.action_type_id], a.trigger, a.success) for a in self.actions(run_id)
        ]

    def attempts(self, run_id: str) -> list[RunAttempt]:
        query = RunAttempt.select().where(RunAttempt.run_id == run_id)
        return self.database.read(lambda: list(query.order_by(RunAttempt.attempt)))

    def flush(self) -> None:
        msg = Flush(self.clock.now())
        self.queues.syncer.put(msg)
        msg.reply.get(timeout=WAIT)

    def stop(self) -> None:
        self.scheduler.stop()
        with gevent.Timeout(WAIT, AssertionError("the scheduler did not stop")):
            while not self.greenlets[2].dead:
                self.clock.advance(1)
                gevent.sleep(0.01)
        self.queues.webhooks.put(ShutDown(self.clock.now()))
        self.queues.syncer.put(ShutDown(self.clock.now()))
        gevent.joinall(self.greenlets, timeout=WAIT)
        self.executor.close()


class Endpoint:
    """A real HTTP endpoint on loopback answering scripted (status, body, delay) in turn."""

    def __init__(self, status: int = 200, body: str = "ok") -> None:
        self.default = (status, body, 0.0)
        self.script: list[tuple[int, str, float]] = []
        self.seen: list[dict[str, Any]] = []  # {"method", "path", "headers", "body", "json"}
        self.server = WSGIServer(("127.0.0.1", 0), self._app, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raw = environ["wsgi.input"].read()
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        self.seen.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "headers": headers,
                "body": raw.decode(),
                "json": parsed,
            }
        )
        status, body, delay = self.script.pop(0) if self.script else self.default
        if delay:
            gevent.sleep(delay)
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [body.encode()]

    def stop(self) -> None:
        self.server.stop(timeout=1)


# Fixtures for the tests that use the kit (a plugin of tests/conftest.py): a kit on each
# database with the local executor, and a loopback HTTP endpoint for hooks and webhooks.


@pytest.fixture
def kit(database: Any, tmp_path: Path) -> Iterator[Kit]:
    kit = Kit(database, kit_config(tmp_path))
    yield kit
    kit.stop()


@pytest.fixture
def hook() -> Iterator[Endpoint]:
    endpoint = Endpoint()
    yield endpoint
    endpoint.stop()
