"""A stand-in scheduler inbox consumer and an API harness for the API's tests.

`FakeScheduler` answers `RunNow`, `CancelRun`, `SkipNext` and `QueryActive` the
way itinerary/scheduler.py does (KeyError for an unknown or archived job, ValueError
for one not manually runnable or not to skip, the new run id or the skipped slot
otherwise, True/False for a cancel), and claims each manual run's slot through the
real syncer so the run row exists. The scheduler has its own tests; the API's only need its replies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import gevent
import pytest
from werkzeug.test import Client

from itinerary import jobstore, messages, states
from itinerary.api import make_api
from itinerary.clock import FakeClock, settle
from itinerary.config import load
from itinerary.context import Context
from itinerary.db import Database, JobRun
from itinerary.http import make_root
from itinerary.ids import new_run_id
from itinerary.jobs import JobSpec, parse_job
from itinerary.syncer import Syncer

JOB = {"name": "report", "commands": [["python", "-c", "print(1)"]], "schedule": "*/5 * * * *"}


class FakeScheduler:
    def __init__(self, queues: messages.Queues, database: Database) -> None:
        self.queues = queues
        self.jobs: dict[int, JobSpec] = {s.id: s for s in database.read(jobstore.load_jobs)}
        self.active: dict[str, messages.ActiveRun] = {}
        self.seen: list[Any] = []

    def run(self) -> None:
        while True:
            msg = self.queues.scheduler.get()
            if isinstance(msg, messages.ShutDown):
                return
            self.seen.append(msg)
            try:
                self.handle(msg)
            except Exception as exc:  # a reply must never be left unset
                if hasattr(msg, "reply"):
                    msg.reply.set_exception(exc)

    def handle(self, msg: Any) -> None:
        if isinstance(msg, messages.JobUpserted):
            self.jobs[msg.job.id] = msg.job
        elif isinstance(msg, messages.JobRemoved):
            self.jobs.pop(msg.job_id, None)
        elif isinstance(msg, messages.RunNow):
            job = self.jobs.get(msg.job_id)
            if job is None:
                raise KeyError(f"job {msg.job_id} does not exist or is archived")
            if not job.manually_runnable:
                raise ValueError(f"job {job.name!r} is not manually runnable")
            run_id, at = new_run_id(), msg.start_at or msg.at
            claim = messages.ClaimSlot(
                run_id,
                job.id,
                at,
                "manual",
                states.SCHEDULED,
                msg.at,
                args=msg.args,
                overrides=dict(msg.overrides) or None,
            )
            self.queues.syncer.put(claim)
            claim.reply.get(timeout=5)
            self.active[run_id] = messages.ActiveRun(
                run_id, job.id, at, states.SCHEDULED, "manual", None
            )
            msg.reply.set(run_id)
        elif isinstance(msg, messages.CancelRun):
            live = self.active.pop(msg.run_id, None) is not None
            if live:
                self.queues.syncer.put(
                    messages.RunUpdate(msg.run_id, msg.at, status=states.KILLED, reason=msg.reason)
                )
                flush = messages.Flush(msg.at)
                self.queues.syncer.put(flush)
                flush.reply.get(timeout=5)
            msg.reply.set(live)
        elif isinstance(msg, messages.SkipNext):
            job = self.jobs.get(msg.job_id)
            if job is None:
                raise KeyError(f"job {msg.job_id}")
            if not job.enabled or job.cron is None:
                raise ValueError(f"job {msg.job_id} is paused: no next run to skip")
            msg.reply.set(job.cron.next_after(msg.at))
        elif isinstance(msg, messages.QueryActive):
            msg.reply.set([a for a in self.active.values() if msg.job_id in (None, a.job_id)])


class FakeExecutor:
    """Logs from the handle itself: {"log": "line\\nline"}; refuses a handle marked gone."""

    name = "fake"

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        from itinerary.executors.base import ExecutorError

        if handle.get("gone"):
            raise ExecutorError("the pod is gone")
        lines = handle.get("log", "").splitlines()
        return "\n".join(lines[-tail_lines:] if tail_lines else lines)


@dataclass
class Api:
    """The real API on the real syncer, with a fake scheduler, called in-process over WSGI."""

    ctx: Context
    scheduler: FakeScheduler
    client: Client
    greenlets: list[gevent.Greenlet] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> Database:
        return self.ctx.database

    @property
    def clock(self) -> FakeClock:
        return self.ctx.clock  # type: ignore[return-value]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        with gevent.Timeout(10):
            resp = self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)
        settle()  # let the fake scheduler take what the request sent it
        return resp

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.call("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)

    def create_job(self, **fields: Any) -> dict[str, Any]:
        resp = self.post("/jobs", json={**JOB, **fields})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def add_run(
        self, job_id: int, scheduled_at: datetime, status: str = "succeeded", **kw: Any
    ) -> str:
        """Seed a run row directly (test set-up, not a component write)."""
        run_id = kw.pop("run_id", None) or new_run_id()
        row = {
            "job_id": job_id,
            "scheduled_at": scheduled_at,
            "run_id": run_id,
            "status": status,
            "created_at": scheduled_at,
            "updated_at": scheduled_at,
            **kw,
        }
        self.database.write(lambda: JobRun.insert(**row).execute(self.database.writer))
        return run_id

    def close(self) -> None:
        now = self.clock.now()
        self.ctx.queues.scheduler.put(messages.ShutDown(now))
        self.ctx.queues.syncer.put(messages.ShutDown(now))
        gevent.joinall(self.greenlets, timeout=5)
        gevent.killall(self.greenlets)


def start_api(
    database: Database, clock: FakeClock, queues: messages.Queues, **settings: Any
) -> Api:
    config = replace(load(None, {}), **settings)
    ctx = Context(config, database, queues, clock, executor=FakeExecutor())
    syncer = Syncer(queues.syncer, database, clock, queues.stats, config)
    scheduler = FakeScheduler(queues, database)
    api = Api(ctx, scheduler, Client(make_root(ctx, make_api(ctx))))
    api.greenlets = [gevent.spawn(syncer.run), gevent.spawn(scheduler.run)]
    return api


def spec(**fields: Any) -> JobSpec:
    return parse_job({**JOB, **fields})


@pytest.fixture(name="api")
def api_fixture(database: Database, clock: FakeClock, queues: messages.Queues) -> Iterator[Api]:
    """The API on each database dialect, authentication off (loopback)."""
    harness = start_api(database, clock, queues)
    yield harness
    harness.close()
