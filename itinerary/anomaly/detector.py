"""The anomaly detector: a component of its own, off the scheduler loop, fed by an inbox.

Inbox: `queues.anomaly`. The stats collector forwards it `RunStartLateness` (a run
started: lateness is scored) and `RunCompleted` (a run ended: its duration and the
job's failure rate are scored); a timer greenlet puts a private `_Tick` on it every
`--anomaly-check-interval` for the periodic check of silent slots. Outbox: the syncer
(`AnomalyRecord`), the webhook handler and the loop (`on_anomaly` actions).

A job's baselines (`JobState`) are built from its history the first time the job is
seen (one read of its last runs, through `Database.read`, which never blocks the
hub) and then updated with each run, so scoring a finished run is arithmetic on a
cached window. The loop never waits for any of this: the stats collector forwards
with `put_nowait`, and a full inbox drops the message (counted) rather than slow it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from gevent.lock import Semaphore

from itinerary import jobstore, messages, states
from itinerary.anomaly import actions
from itinerary.anomaly.models import (
    DURATION_N,
    OUTCOMES_N,
    DurationModel,
    FailureModel,
    Finding,
    LatenessModel,
)
from itinerary.anomaly.silence import run_anomaly_id, silent_slots, slot_anomaly_id
from itinerary.clock import EPOCH, Clock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.ids import JobId, RunId
from itinerary.inbox import serve_beside, turn_of_the_loop
from itinerary.jobs import JobSpec
from itinerary.models import Job, JobRun, tuples

log = logging.getLogger(__name__)
JUDGED = (states.SUCCEEDED, states.FAILED, states.LOST)  # killed is someone's decision
SILENCE_LOOKBACK = timedelta(hours=1)  # how far back the first check after start-up looks
KEPT = 1000  # latest findings kept in memory (for tests and the log)
JOBS_PER_SLICE = 50  # jobs whose slots are worked out between two yields (about 2 ms)
# Job definitions are re-read when changed since the last read, less this (commit delays).
JOBS_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class _Tick:
    at: datetime


@dataclass
class JobState:
    """One job's baselines and how to read its local time."""

    tz: Any = UTC
    durations: DurationModel = field(default_factory=DurationModel)
    lateness: LatenessModel = field(default_factory=LatenessModel)
    failures: FailureModel = field(default_factory=FailureModel)

    def completed(self, status: str, runtime_s: float | None, ended: datetime) -> list[Finding]:
        """Score a finished run, then learn from it (the cheap path: no I/O)."""
        found = []
        if status == states.SUCCEEDED and runtime_s is not None:
            local = (ended - timedelta(seconds=runtime_s)).astimezone(self.tz)
            finding = self.durations.score(runtime_s, local.hour, local.weekday())
            if finding is not None:
                found.append(finding)
            self.durations.add(runtime_s, local.hour, local.weekday())
        if status in JUDGED:
            finding = self.failures.add(status != states.SUCCEEDED)
            if finding is not None:
                found.append(finding)
        return found

    def learn(self, status: str, runtime_s: float | None, ended: datetime) -> None:
        """Take a past run into the baselines without judging it (history at start-up:
        a few microseconds a run, so a job's 200 runs hold the hub well under a ms)."""
        if status == states.SUCCEEDED and runtime_s is not None:
            local = (ended - timedelta(seconds=runtime_s)).astimezone(self.tz)
            self.durations.add(runtime_s, local.hour, local.weekday())
        if status in JUDGED:
            self.failures.outcomes.append(status != states.SUCCEEDED)

    def started(self, lateness_s: float) -> Finding | None:
        finding = self.lateness.score(lateness_s)
        self.lateness.add(lateness_s)
        return finding


def load_history(job_id: int, but: str | None = None) -> list[tuple[str, Any, Any]]:
    """(status, started_at, completed_at) of a job's latest runs but run `but`, oldest
    first (reader)."""
    return list(reversed(list(history_query(job_id, but).tuples())))


def history_query(job_id: int, but: str | None = None) -> Any:
    return (
        JobRun.select(JobRun.status, JobRun.started_at, JobRun.completed_at)
        .where((JobRun.job_id == job_id) & (JobRun.run_id != (but or "")))
        .order_by(JobRun.scheduled_at.desc())
        .limit(max(OUTCOMES_N, DURATION_N * 2))
    )


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Detector:
    """See the module docstring."""

    def __init__(
        self,
        inbox: Any,
        queues: messages.Queues,
        database: Database,
        clock: Clock,
        config: Config,
        metrics: Any = None,
    ) -> None:
        self.inbox = inbox
        self.queues = queues
        self.database = database
        self.clock = clock
        self.interval = float(config.anomaly_check_interval)
        self.cluster = str(config.cluster_name)
        # A slot is judged silent only once the scheduler has had time to claim it.
        self.settle = timedelta(seconds=max(60.0, 2 * float(config.grace_period)))
        self.metrics = metrics
        self.jobs: dict[int, JobSpec] = {}
        self.states: dict[int, JobState] = {}
        self.found: list[messages.AnomalyRecord] = []
        self.handled = 0  # messages taken from the inbox and dealt with
        self._jobs_read_at: datetime | None = None
        self._checking = Semaphore()
        self.checked_until = clock.now() - self.settle - SILENCE_LOOKBACK

    def run(self) -> None:
        """Greenlet body: returns after ShutDown."""
        serve_beside(self._timer, self.inbox, self._handle_one)

    def _handle_one(self, msg: Any) -> None:
        try:
            self.handle(msg)
        except Exception:  # one bad message must not stop detection
            log.exception("anomaly detector: could not handle %r", msg)
        self.handled += 1

    def _timer(self) -> None:
        while True:
            self.clock.sleep(self.interval)
            self.inbox.put(_Tick(self.clock.now()))

    def handle(self, msg: Any) -> None:
        if isinstance(msg, messages.RunCompleted):
            state = self._state(msg.job_id, msg.run_id)
            for finding in state.completed(msg.status, msg.runtime_s, msg.at):
                self._raise(msg.job_id, finding, msg.run_id, None)
        elif isinstance(msg, messages.RunStartLateness):
            late = self._state(msg.job_id, msg.run_id).started(msg.lateness_s)
            if late is not None:
                self._raise(msg.job_id, late, msg.run_id, None)
        elif isinstance(msg, _Tick):
            self.check_silence(msg.at)

    # --- baselines ----------------------------------------------------------------------

    def _job(self, job_id: int) -> JobSpec | None:
        job = self.jobs.get(job_id)
        if job is None:
            job = self.database.read(jobstore.get_job, job_id)
            if job is not None:
                self.jobs[job_id] = job
        return job

    def _state(self, job_id: int, run_id: str | None = None) -> JobState:
        """The job's baselines, built from its history (but the run at hand) when new."""
        state = self.states.get(job_id)
        if state is not None:
            return state
        job = self._job(job_id)
        state = JobState(tz=ZoneInfo(job.timezone) if job else UTC)
        for status, started, completed in self.database.read(load_history, job_id, run_id):
            state.learn(status, *_runtime(started, completed))
        self.states[job_id] = state
        return state

    # --- silence -------------------------------------------------------------------------

    def check_silence(self, now: datetime) -> None:
        """Find silent slots between the last check and `now - settle` (one check at a time)."""
        with self._checking:
            self._check_silence(now)

    def _check_silence(self, now: datetime) -> None:
        since, until = self.checked_until, now - self.settle
        if until <= since:
            return
        self._refresh_jobs(now)
        recorded = self.database.read(_recorded, since, until)
        jobs = list(self.jobs.values())
        found = []
        for n in range(0, len(jobs), JOBS_PER_SLICE):
            found += silent_slots(jobs[n : n + JOBS_PER_SLICE], since, until, recorded)
            # Cron arithmetic for thousands of jobs: a turn of the event loop in between, so
            # timers (the scheduler loop's tick) come first.
            turn_of_the_loop()
        for job, slot in found:
            text = (
                f"no run for the slot at {slot.isoformat().replace('+00:00', 'Z')}; its "
                f"schedule {job.schedule!r} ({job.timezone}) should have started one"
            )
            baseline = {"schedule": job.schedule, "timezone": job.timezone}
            self._raise(job.id or 0, Finding("silence", 1.0, baseline, text), None, slot)
        self.checked_until = until

    def _refresh_jobs(self, now: datetime) -> None:
        """All live jobs the first time, then those changed lately (archived ones leave)."""
        if self._jobs_read_at is None:
            self.jobs = {j.id: j for j in self.database.read(jobstore.load_jobs) if j.id}
        else:
            for job in self.database.read(_changed_jobs, self._jobs_read_at - JOBS_SLACK):
                if job.archived_at is None:
                    self.jobs[job.id or 0] = job
                else:
                    self.jobs.pop(job.id or 0, None)
        self._jobs_read_at = now

    # --- raising -------------------------------------------------------------------------

    def _raise(
        self, job_id: int, finding: Finding, run_id: str | None, slot: datetime | None
    ) -> None:
        if run_id is not None:
            ident = run_anomaly_id(run_id, finding.kind)
        else:
            assert slot is not None
            ident = slot_anomaly_id(job_id, slot)
        record = messages.AnomalyRecord(
            id=ident,
            job_id=JobId(job_id),
            run_id=RunId(run_id) if run_id is not None else None,
            slot_at=slot,
            kind=finding.kind,
            at=self.clock.now(),
            score=finding.score,
            baseline=finding.baseline,
            explanation=finding.explanation,
        )
        log.info("anomaly (%s) in job %s: %s", finding.kind, job_id, finding.explanation)
        self.queues.syncer.put(record)
        self.found = [*self.found[-(KEPT - 1) :], record]
        if self.metrics is not None:
            self.metrics.anomalies.labels(finding.kind).inc()
        job = self._job(job_id)
        if job is not None:
            actions.fire(self.queues, self.clock, job, record, self.cluster)


def _runtime(started: Any, completed: Any) -> tuple[float | None, datetime]:
    s, c = _as_utc(started), _as_utc(completed)
    if s is None or c is None:
        return None, c or EPOCH
    return (c - s).total_seconds(), c


def _changed_jobs(since: datetime) -> list[JobSpec]:
    """Jobs (archived ones too) whose definition changed at or after `since`."""
    ids = [job_id for (job_id,) in tuples(Job.select(Job.id).where(Job.updated_at >= since))]
    return jobstore.load_jobs(ids, include_archived=True) if ids else []


def _recorded(since: datetime, until: datetime) -> set[tuple[int, datetime]]:
    """(job_id, slot) of every run whose slot is in (since, until] (by its index)."""
    rows = tuples(recorded_query(since, until))
    return {(job_id, cast(datetime, _as_utc(at))) for job_id, at in rows}  # NOT NULL


def recorded_query(since: datetime, until: datetime) -> Any:
    return JobRun.select(JobRun.job_id, JobRun.scheduled_at).where(
        (JobRun.scheduled_at > since) & (JobRun.scheduled_at <= until)
    )
