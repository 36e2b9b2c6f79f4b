"""The central scheduler: the loop that owns all scheduling state (seed, "Central scheduler").

Every `LOOP_INTERVAL` the loop runs the seed's seven steps in `tick`:

1. shutdown check (in `run`: orchestrators not yet started are released, running
   ones get `shutdown_timeout` to finish, then are released for the next process);
2. rebuild the `ScheduledRunIndex` when `INDEX_REBUILD_INTERVAL` passed or a job changed;
3. launch an orchestrator for each slot in `(now - GRACE_PERIOD, now + PRE_SCHEDULE_INTERVAL]`
   that has none yet (the `slots` map is the grace-period dedup), plus slots found
   missed on start-up or after a stall; a burst of slots due at one instant is spread
   over the iterations before it is due, so no single iteration launches them all.
   Orchestrators of one instant join that instant's `Cohort`, which claims and starts
   them together (see `itinerary.orchestrator`);
4. drain the inbox (`queues.scheduler`): job changes, manual runs, cancellations,
   kill/skip actions, finished runs the loop was waiting for, queries;
5. forget finished orchestrators once `scheduled_at + GRACE_PERIOD` has passed, at most
   `FORGET_BUDGET` an iteration (forgetting later is harmless; the dedup only needs
   it not to happen sooner); an iteration that launched nothing makes run ids ahead
   for the next burst;
6. hand the loop's own state changes to the syncer (`queues.syncer`);
7. send `LoopIteration` figures to the stats collector (`queues.stats`).

The loop reads its orchestrators' state (`status`, `started_at`, `finished`)
directly instead of being sent every change: they live in the same hub. An
orchestrator still running when its grace period ends is marked to send
`RunFinished`, the one notice the loop needs.

No I/O in the loop: `start_up` reads the job definitions and the runs a previous
process left unfinished (restart recovery) before the loop starts.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from array import array
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
from gevent.event import Event
from gevent.pool import Group

from itinerary import gcpolicy, states
from itinerary.clock import Clock
from itinerary.db import Database, JobRun
from itinerary.executors.base import Executor
from itinerary.ids import new_run_id
from itinerary.index import IndexBuilder, ScheduledRunIndex
from itinerary.jobs import JobSpec
from itinerary.jobstore import load_jobs
from itinerary.messages import (
    ActiveRun,
    AdmitRun,
    CancelRun,
    GetLoopStats,
    JobRemoved,
    JobUpserted,
    KillInstances,
    LoopIteration,
    QueryActive,
    Queues,
    RunFinished,
    RunNow,
    RunUpdate,
    ShutDown,
    SkipNext,
)
from itinerary.orchestrator import Cohort, Orchestrator, Slot, admit

log = logging.getLogger(__name__)

# Missed slots are looked for this far back on start-up, and at most this many per job are
# recorded (the most recent), so a long outage does not flood the history.
MISSED_LOOKBACK = timedelta(days=1)
MISSED_LIMIT = 100
# The loop is reported not ready when it has not ticked for this many intervals.
READY_INTERVALS = 5
# At most this many expired runs are forgotten per iteration (about 3 ms of work, mostly
# freeing their objects), so the end of a burst's grace period is spread over iterations
# like its launch.
FORGET_BUDGET = 2000
# Run ids are made ahead, before the first iteration and then in iterations that launch
# nothing (one costs about 2 us, more than the rest of launching a run), at most this many
# an iteration, up to one per scheduled job.
RUN_IDS_AHEAD = 1000


@dataclass(slots=True)
class _Entry:
    """activeOrchestrators[run_id]: what the loop knows about one orchestrator."""

    orchestrator: Orchestrator
    job_id: int
    scheduled_at: datetime

    @property
    def status(self) -> str:
        return self.orchestrator.status or states.SCHEDULED

    @property
    def trigger(self) -> str:
        return self.orchestrator.slot.trigger

    @property
    def started_at(self) -> datetime | None:
        return self.orchestrator.started_at

    @property
    def done(self) -> bool:
        return self.orchestrator.finished


class Scheduler:
    def __init__(
        self, config: Any, queues: Queues, clock: Clock, executor: Executor, database: Database
    ) -> None:
        self.config = config
        self.queues = queues
        self.inbox = queues.scheduler
        self.clock = clock
        self.executor = executor
        self.database = database
        self.interval = config.loop_interval
        self.grace = timedelta(seconds=config.grace_period)
        self.pre = timedelta(seconds=config.pre_schedule_interval)
        self.jobs: dict[int, JobSpec] = {}
        self.builder = IndexBuilder(config.grace_period, config.lookahead_window)
        self.index = ScheduledRunIndex.empty(clock.now())
        self.active: dict[str, _Entry] = {}
        self.slots: dict[tuple[int, datetime], str] = {}
        self.group = Group()
        self._cohorts: dict[datetime, Cohort] = {}
        # Queried, not launched yet: [scheduled_at, job ids, how many launched], in time order.
        self._due: deque[list[Any]] = deque()
        self._due_count = 0
        self._backlog: list[Slot] = []  # recovered and missed slots, launched first
        # (forget after, seq, run ids) of launched runs, one entry per instant and iteration.
        self._expiry: list[tuple[datetime, int, list[str]]] = []
        self._seq = itertools.count()
        self._skips: dict[int, tuple[datetime, str]] = {}  # job -> (slot to skip, reason)
        self._run_ids: list[str] = []  # made ahead
        self._outbox: list[RunUpdate] = []
        self._stopping = Event()
        self._release_now = False
        self._rebuild = True
        self._changed: set[int] = set()  # jobs whose slots inside the covered range may be new
        self._last_rebuild: datetime | None = None
        self._covered: datetime | None = None  # upper end of the last launch query
        self._last_tick: float | None = None
        self.stats: dict[str, Any] = {"iterations": 0, "launched": 0, "rebuild_s": 0.0}
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._late_by: list[float] = []
        self._missed_by: list[float] = []  # per missed slot: time since its grace period ended
        self._cancelled = 0
        self._launched = 0

    # --- start-up (I/O allowed: the loop is not running yet) -----------------------------

    def start_up(self) -> None:
        """Load jobs and unfinished runs, recover them, find missed slots, build the index."""
        now = self.clock.now()
        jobs, rows, last = self.database.read(_load_state)
        self.jobs = {j.id: j for j in jobs if j.id is not None}
        self.builder.set_jobs(jobs)
        self._rebuild_index(now)
        known = dict(self.jobs)
        missing = {r.job_id for r in rows} - set(known)
        if missing:
            for job in self.database.read(load_jobs, list(missing), include_archived=True):
                known[job.id] = job
        for row in rows:
            self._recover(row, known.get(row.job_id), now)
        for job in self.jobs.values():
            since = last.get(job.id) or job.created_at or now
            self._find_missed(job, since, now - self.grace, "Itinerary was not running")
        self._covered = now - self.grace
        log.info(
            "scheduler loaded %d jobs, recovered %d unfinished runs, %d slots to decide",
            len(self.jobs),
            len(rows),
            len(self._backlog),
        )

    def _recover(self, row: JobRun, job: JobSpec | None, now: datetime) -> None:
        """Adopt a run a previous process left unfinished, or record it lost."""
        if job is None:
            self._lost(row.run_id, now, "its job no longer exists")
            return
        slot = Slot(
            run_id=row.run_id,
            job=job,
            scheduled_at=row.scheduled_at,
            trigger=row.trigger,
            args=tuple(row.args) if row.args is not None else None,
            overrides=dict(row.overrides or {}),
            claimed=True,
            attempt=row.attempt or 1,
            started_at=row.started_at,
        )
        request = slot.request(slot.attempt)
        if row.status in (states.STARTING, states.RUNNING):
            # Without a handle the executor may still find the workload by its labels: the
            # process may have died between creating it and recording the handle.
            slot.adopt = self.executor.adopt(request, row.handle or {})
            if slot.adopt is None:
                why = (
                    f"the {self.executor.name} executor cannot find it"
                    if row.handle
                    else "Itinerary stopped while starting it"
                )
                self._lost(row.run_id, now, why)
                return
        elif row.scheduled_at <= now - self.grace:
            # Still 'scheduled' past its time: a crash may have come after the workload was
            # created but before STARTING was written. Ask before calling it missed.
            slot.adopt = self.executor.adopt(request, {})
            if slot.adopt is None:
                slot.missed_reason = "Itinerary was not running at its start time"
        self._backlog.append(slot)
        self.slots[(job.id or 0, row.scheduled_at)] = row.run_id

    def _lost(self, run_id: str, now: datetime, why: str) -> None:
        reason = f"lost after a restart: {why}"
        self._outbox.append(
            RunUpdate(
                run_id, now, status=states.LOST, reason=reason, error=reason, completed_at=now
            )
        )

    def _find_missed(self, job: JobSpec, since: datetime, until: datetime, why: str) -> None:
        """Queue the job's slots in `(since, until]` as missed (catch-up decides their fate)."""
        if not job.schedule or not job.enabled or job.id is None:
            return
        start = max(since, until - MISSED_LOOKBACK)
        found: deque[datetime] = deque(maxlen=MISSED_LIMIT)
        for fire in job.cron.iter_after(start):  # type: ignore[union-attr]
            if fire > until:
                break
            if (job.id, fire) not in self.slots:
                found.append(fire)
        for fire in found:
            self._missed_by.append((until - fire).total_seconds())
            reason = f"{why} at {fire.isoformat().replace('+00:00', 'Z')}"
            slot = Slot(new_run_id(), job, fire, missed_reason=reason)
            self._backlog.append(slot)
            self.slots[(job.id, fire)] = slot.run_id

    # --- the loop ------------------------------------------------------------------------

    def stop(self, release: bool = False) -> None:
        """Ask the loop to stop (safe from a signal handler greenlet).

        `release`: leave running runs to the next leader at once instead of giving them
        `shutdown_timeout` to finish (a leader stepping down).
        """
        self._release_now = self._release_now or release
        self._stopping.set()

    def ready(self) -> tuple[bool, str]:
        if self._last_tick is None:
            return False, "the scheduler loop has not ticked yet"
        ago = self.clock.monotonic() - self._last_tick
        if ago > READY_INTERVALS * self.interval:
            return False, f"the scheduler loop last ticked {ago:.1f}s ago"
        return True, "the scheduler loop is ticking"

    def run(self) -> None:
        """The loop greenlet: tick every interval until stopped, then shut down."""
        self._make_run_ids(len(self.builder))
        gcpolicy.settle()
        while not self._stopping.is_set():
            began = self.clock.monotonic()
            self.tick(self.clock.now())
            spent = self.clock.monotonic() - began
            self.clock.wait(self._stopping, max(0.0, self.interval - spent))
        self._shut_down()

    def tick(self, now: datetime) -> None:
        """One iteration of the seed's steps 2-7."""
        began = self.clock.monotonic()
        self._last_tick = began
        if (
            self._rebuild
            or self._last_rebuild is None
            or (now - self._last_rebuild).total_seconds() >= self.config.index_rebuild_interval
            or now + self.pre > self.index.hi
        ):
            self._rebuild_index(now)
        self._launch_due(now)
        inbox_length = self.inbox.qsize()
        waited = self._drain(now)
        self._forget(now)
        if not self._launched:
            self._make_run_ids(RUN_IDS_AHEAD)
        for update in self._outbox:
            self.queues.syncer.put(update)
        self._outbox.clear()
        self.stats["iterations"] += 1
        duration = self.clock.monotonic() - began
        self.stats["last_iteration_s"] = duration
        self.queues.stats.put(
            LoopIteration(
                at=now,
                duration_s=duration,
                inbox_length=inbox_length,
                messages=len(waited),
                time_in_inbox_s=tuple(waited),
                launched=self._launched,
                late_by_s=tuple(self._late_by),
                missed_by_s=tuple(self._missed_by),
                cancelled=self._cancelled,
                active_runs=len(self.active),
            )
        )
        self._reset_counters()

    # step 2
    def _rebuild_index(self, now: datetime) -> None:
        began = self.clock.monotonic()
        self.index = self.builder.rebuild(now)
        self._last_rebuild = now
        self._rebuild = False
        self.stats["rebuild_s"] = self.clock.monotonic() - began
        self.stats["index_size"] = len(self.index)

    # step 3
    def _launch_due(self, now: datetime) -> None:
        lo, hi = now - self.grace, now + self.pre
        if self._covered is not None and self._covered < lo:
            stalled = f"the scheduler loop stalled (no iteration from {self._covered:%H:%M:%S}Z)"
            for job in self.jobs.values():
                self._find_missed(job, self._covered, lo, stalled)
        for slot in self._backlog:
            self._launch(slot, now, self._expiring(slot.scheduled_at))
        self._backlog.clear()
        start = lo if self._covered is None else max(self._covered, lo)
        if self._changed:  # a changed job may have slots inside the range queried already
            changed, self._changed = self._changed, set()
            for at, ids in self.index.instants(lo, start):
                mine = array("q", (j for j in ids if j in changed))
                if mine:
                    self._due.append([at, mine, 0])
                    self._due_count += len(mine)
            self._due = deque(sorted(self._due, key=lambda pending: pending[0]))
        for at, ids in self.index.instants(start, hi):
            self._due.append([at, ids, 0])
            self._due_count += len(ids)
        self._covered = hi
        if not self._due:
            return
        # Spread a burst over the iterations left before the earliest is due, keeping the
        # last interval for the claims to come back.
        left = math.ceil((self._due[0][0] - now).total_seconds() / self.interval - 1)
        quota = math.ceil(self._due_count / max(1, left))
        urgent = now + timedelta(seconds=2 * self.interval)
        while self._due:
            pending = self._due[0]
            at, ids, done = pending
            take = len(ids) - done if at <= urgent else min(quota, len(ids) - done)
            if take <= 0:
                break
            self._launch_batch(at, ids[done : done + take], now)
            quota -= take
            self._due_count -= take
            if done + take == len(ids):
                self._due.popleft()
            else:
                pending[2] = done + take

    def _launch_batch(self, at: datetime, ids: array, now: datetime) -> None:
        """Launch the slots of jobs `ids` at `at`: the per-run work of step 3, kept small."""
        expiring = self._expiring(at)
        jobs, slots, skips, active = self.jobs, self.slots, self._skips, self.active
        ready_ids = self._run_ids
        context = (self.queues, self.clock, self.executor, self.config, self.database)
        launched = []
        for job_id in ids:
            job = jobs.get(job_id)
            key = (job_id, at)
            if job is None or key in slots:
                continue
            run_id = ready_ids.pop() if ready_ids else new_run_id()
            slot = Slot(run_id, job, at)
            skip = skips.get(job_id)
            if skip is not None and skip[0] == at:
                slot.skip_reason = skips.pop(job_id)[1]
            orchestrator = Orchestrator(slot, *context)
            active[run_id] = _Entry(orchestrator, job_id, at)
            slots[key] = run_id
            expiring.append(run_id)
            launched.append(orchestrator)
        if launched:
            self._cohort(at).add(launched)
            self._count(len(launched), at, now)

    def _launch(self, slot: Slot, now: datetime, expiring: list[str]) -> None:
        """Launch one slot (recovered, missed or manual)."""
        orchestrator = Orchestrator(
            slot, self.queues, self.clock, self.executor, self.config, self.database
        )
        job_id = slot.job.id or 0
        self.active[slot.run_id] = _Entry(orchestrator, job_id, slot.scheduled_at)
        self.slots[(job_id, slot.scheduled_at)] = slot.run_id
        expiring.append(slot.run_id)
        if slot.adopt is not None:  # restart recovery: straight to following the workload
            self.group.spawn(orchestrator.run)
        else:
            self._cohort(slot.scheduled_at).add([orchestrator])
        if slot.trigger == "schedule" and not slot.missed_reason:
            self._count(1, slot.scheduled_at, now)
        else:
            self._count(1, now, now)

    def _make_run_ids(self, most: int) -> None:
        """Make up to `most` run ids ahead, up to one per scheduled job."""
        wanted = min(most, len(self.builder) - len(self._run_ids))
        if wanted > 0:
            self._run_ids.extend([new_run_id() for _ in range(wanted)])

    def _count(self, launched: int, at: datetime, now: datetime) -> None:
        """Launch figures; scheduled slots launched after their time are late."""
        self._launched += launched
        self.stats["launched"] += launched
        if at < now:
            self._late_by.extend([(now - at).total_seconds()] * launched)

    def _cohort(self, at: datetime) -> Cohort:
        cohort = self._cohorts.get(at)
        if cohort is None:
            cohort = self._cohorts[at] = Cohort(at, self.clock, self.group.spawn, self._emptied)
        return cohort

    def _emptied(self, cohort: Cohort) -> None:
        if self._cohorts.get(cohort.at) is cohort:
            del self._cohorts[cohort.at]

    def _expiring(self, at: datetime) -> list[str]:
        """A list the caller fills with run ids to forget once `at + GRACE_PERIOD` passed."""
        run_ids: list[str] = []
        heapq.heappush(self._expiry, (at + self.grace, next(self._seq), run_ids))
        return run_ids

    # step 4
    def _drain(self, now: datetime) -> list[float]:
        waited: list[float] = []
        while not self.inbox.empty():
            msg = self.inbox.get_nowait()
            at = getattr(msg, "at", None)
            if at is not None:
                waited.append(max(0.0, (now - at).total_seconds()))
            self.handle(msg, now)
        return waited

    def handle(self, msg: Any, now: datetime) -> None:
        """Apply one inbox message (the loop's only way to learn anything)."""
        if isinstance(msg, RunFinished):  # only sent for a run whose grace period is over
            entry = self.active.pop(msg.run_id, None)
            if entry is not None:
                self.slots.pop((entry.job_id, entry.scheduled_at), None)
        elif isinstance(msg, QueryActive):
            msg.reply.set(
                [
                    ActiveRun(run_id, e.job_id, e.scheduled_at, e.status, e.trigger, e.started_at)
                    for run_id, e in self.active.items()
                    if not e.done and (msg.job_id is None or e.job_id == msg.job_id)
                ]
            )
        elif isinstance(msg, AdmitRun):
            msg.reply.set(admit(msg, self.active))
        elif isinstance(msg, RunNow):
            self._run_now(msg, now)
        elif isinstance(msg, CancelRun):
            entry = self.active.get(msg.run_id)
            live = entry is not None and not entry.done
            if entry is not None and live:
                entry.orchestrator.cancel(msg.reason)
                self._cancelled += 1
            msg.reply.set(live)
        elif isinstance(msg, KillInstances):
            self._kill_instances(msg)
        elif isinstance(msg, SkipNext):
            self._skip_next(msg, now)
        elif isinstance(msg, JobUpserted):
            if msg.job.id is not None:
                self.jobs[msg.job.id] = msg.job
                self.builder.set_job(msg.job)
                self._rebuild = True
                self._changed.add(msg.job.id)
        elif isinstance(msg, JobRemoved):
            self.jobs.pop(msg.job_id, None)
            self.builder.remove_job(msg.job_id)
            self._rebuild = True
        elif isinstance(msg, GetLoopStats):
            msg.reply.set(self.loop_stats())
        elif isinstance(msg, ShutDown):
            self.stop()
        else:
            log.warning("scheduler: unknown message %r", msg)

    def _run_now(self, msg: RunNow, now: datetime) -> None:
        job = self.jobs.get(msg.job_id)
        if msg.job_name is not None:  # kickOffJob names its job (a rare action: a scan is fine)
            job = next((j for j in self.jobs.values() if j.name == msg.job_name), None)
        if job is None:
            which = msg.job_name if msg.job_name is not None else msg.job_id
            msg.reply.set_exception(KeyError(f"job {which} does not exist or is archived"))
            return
        given = {"args"} if msg.args is not None else set()
        refused = sorted((given | set(msg.overrides)) - set(job.manual_run_modifiable_fields))
        if msg.trigger == "kickoff" and refused:
            msg.reply.set_exception(
                ValueError(
                    f"job {job.name!r} does not let a run override {', '.join(refused)} "
                    "(its manualRunModifiableFields)"
                )
            )
            return
        if msg.depth > self.config.kickoff_depth_limit:
            msg.reply.set_exception(
                ValueError(
                    f"kickOffJob chain deeper than --kickoff-depth-limit "
                    f"{self.config.kickoff_depth_limit}: {job.name!r} not started"
                )
            )
            return
        if msg.trigger == "manual" and not job.manually_runnable:
            msg.reply.set_exception(ValueError(f"job {job.name!r} is not manually runnable"))
            return
        if msg.run_id is not None and msg.run_id in self.active:  # delivered twice
            msg.reply.set(msg.run_id)
            return
        at = msg.start_at or msg.at
        while (job.id, at) in self.slots:  # two requests in one instant are two slots
            at += timedelta(microseconds=1)
        slot = Slot(
            msg.run_id or new_run_id(),
            job,
            at,
            trigger=msg.trigger,
            args=msg.args,
            overrides=dict(msg.overrides),
            parent_run_id=msg.parent_run_id,
            depth=msg.depth,
            recorded=msg.reply,  # answered once the run's row is committed
        )
        self._launch(slot, now, self._expiring(at))

    def _kill_instances(self, msg: KillInstances) -> None:
        running = [
            (e.started_at or e.scheduled_at, run_id, e)
            for run_id, e in self.active.items()
            if e.job_id == msg.job_id and not e.done and e.orchestrator.started
        ]
        running.sort(key=lambda t: t[0])
        for _, _, entry in running[-1:] if msg.latest_only else running:
            entry.orchestrator.cancel(msg.reason)
            self._cancelled += 1

    def _skip_next(self, msg: SkipNext, now: datetime) -> None:
        """Skip the next slot: a launched one that has not started, else the next to launch."""
        waiting = [
            (e.scheduled_at, e)
            for e in self.active.values()
            if e.job_id == msg.job_id
            and not e.done
            and not e.orchestrator.started
            and e.trigger == "schedule"
            and e.scheduled_at >= now
        ]
        if msg.slot is not None:  # re-applied after a failover: that slot, if still ahead
            waiting = [(at, e) for at, e in waiting if at == msg.slot]
            if not waiting and msg.slot > now and (msg.job_id, msg.slot) not in self.slots:
                self._skips[msg.job_id] = (msg.slot, msg.reason)
            if not waiting:
                msg.reply.set(msg.slot)
                return
        if waiting:
            at, entry = min(waiting, key=lambda t: t[0])
            entry.orchestrator.skip(msg.reason)
            msg.reply.set(at)
            return
        job = self.jobs.get(msg.job_id)
        if job is None:
            msg.reply.set_exception(KeyError(f"job {msg.job_id}"))
            return
        if job.cron is None or not job.enabled:
            why = "is paused" if job.cron is not None else "has no schedule"
            msg.reply.set_exception(ValueError(f"job {msg.job_id} {why}: no next run to skip"))
            return
        queued = (at for at, ids, done in self._due if msg.job_id in ids[done:])
        after = max([now + self.pre, *queued])
        nxt = self.index.next_for(msg.job_id, after) or job.cron.next_after(after)
        self._skips[msg.job_id] = (nxt, msg.reason)
        msg.reply.set(nxt)

    # step 5
    def _forget(self, now: datetime) -> None:
        budget = FORGET_BUDGET
        while self._expiry and self._expiry[0][0] < now and budget > 0:
            run_ids = self._expiry[0][2]
            while run_ids and budget > 0:
                budget -= 1
                run_id = run_ids.pop()
                entry = self.active.get(run_id)
                if entry is None:
                    continue
                if entry.orchestrator.finished:
                    del self.active[run_id]
                    self.slots.pop((entry.job_id, entry.scheduled_at), None)
                else:  # still running: it tells the loop when it ends
                    entry.orchestrator.linger = True
            if not run_ids:
                heapq.heappop(self._expiry)

    def loop_stats(self) -> dict[str, Any]:
        return {
            **self.stats,
            "jobs": len(self.jobs),
            "scheduled_jobs": len(self.builder),
            "active_runs": sum(1 for e in self.active.values() if not e.done),
            "tracked_runs": len(self.active),
            "inbox_length": self.inbox.qsize(),
            "last_rebuild": self._last_rebuild,
        }

    # step 1
    def _shut_down(self) -> None:
        """Release runs not started; give running ones `shutdown_timeout`, then release them."""
        for entry in self.active.values():
            if not entry.done and not entry.orchestrator.started:
                entry.orchestrator.release()
        timeout = 0.0 if self._release_now else self.config.shutdown_timeout
        deadline = self.clock.monotonic() + timeout
        while self.clock.monotonic() < deadline and any(not e.done for e in self.active.values()):
            self._drain_at_shutdown()
            self.clock.sleep(min(self.interval, max(0.0, deadline - self.clock.monotonic())))
        for entry in self.active.values():
            if not entry.done:
                entry.orchestrator.release()
        self.group.join(timeout=self.interval)
        self._drain_at_shutdown()
        for update in self._outbox:
            self.queues.syncer.put(update)
        self._outbox.clear()

    def _drain_at_shutdown(self) -> None:
        """Notices are applied; requests for new work are refused."""
        now = self.clock.now()
        while not self.inbox.empty():
            msg = self.inbox.get_nowait()
            if isinstance(msg, RunNow):
                msg.reply.set_exception(RuntimeError("Itinerary is shutting down"))
            elif isinstance(msg, JobUpserted | JobRemoved | SkipNext):
                continue
            else:
                self.handle(msg, now)


def _load_state() -> tuple[list[JobSpec], list[JobRun], dict[int, datetime]]:
    """Jobs, unfinished runs, and each job's latest scheduled slot (one read)."""
    jobs = load_jobs()
    rows = list(JobRun.select().where(JobRun.status.in_(states.ACTIVE)))
    latest = (
        JobRun.select(JobRun.job_id, pw.fn.MAX(JobRun.scheduled_at).alias("last"))
        .where(JobRun.trigger.in_(("schedule", "catchup")))
        .group_by(JobRun.job_id)
    )
    last = {row.job_id: JobRun.scheduled_at.python_value(row.last) for row in latest}
    return jobs, rows, last
