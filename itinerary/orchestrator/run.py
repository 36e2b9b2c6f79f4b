"""The orchestrator: one per run, from claiming its slot to its final state.

Launched by the scheduler loop `PRE_SCHEDULE_INTERVAL` before the start time
(seed, "Orchestrator"). It

1. claims the slot: `ClaimSlot` to `queues.syncer`, waiting for the answer; a
   slot someone else claimed is never started (exactly once, design.md);
2. waits for the start time on the clock, honouring cancellation and shutdown;
3. checks the pre-execution constraints (`maxConcurrentRuns` asks the loop with
   `QueryActive`; held back means `waiting`, then `skipped` with the reason);
4. starts the attempt through its executor and follows the executor's events,
   enforcing `maxExpectedRunTime` (flag + violation) and `maxAllowedRunTime`
   (kill, `failed`, violation);
5. on failure, retries per a `retry` action (attempts of the same run), then
   takes the on_success / on_failure actions.

Missed slots (found on start-up or after a stall) are decided here too: run
when `catchUp` is on and the slot lies inside `catchUpWindow`, otherwise the
slot is recorded `missed` with the reason.

Runs due at the same instant are claimed and started together by a `Cohort`
(itinerary/cohort.py); each started run then gets its own greenlet here.

Every state change goes to the syncer as a `RunUpdate` (never the database).
The loop reads an orchestrator's `status`, `started_at` and `finished` directly
(one hub, no locking), so a state change costs it no message; it is sent
`RunFinished` only for a run it is waiting to forget (`linger`, set once the
slot's grace period passed). The stats collector gets `RunCompleted` and
`RunStartLateness`.

The constraints are checked in constraints.py, one function each; the actions
are taken by actions.py, one handler each. Triggers: `on_start` (the workload
runs), `on_success`, `on_failure` (failed or lost), `on_violation` (with its
constraint), `on_skipped`, `on_missed`.

Why one long module: `Orchestrator` is one state machine whose state the loop reads
directly (`status`, `started_at`, `finished`); its steps share that state and the run's
records, so they stay one class, and what is separable already lives beside it
(cohort.py, constraints.py, actions.py, hooks.py, admission.py).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import gevent
from gevent.event import AsyncResult, Event

from itinerary import states
from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.db import Database
from itinerary.durations import format_duration, parse_duration
from itinerary.executors.base import (
    FAILED,
    KILLED,
    LOST,
    RUNNING,
    STARTED,
    SUCCEEDED,
    ExecEvent,
    Execution,
    Executor,
    ExecutorError,
    RunRequest,
)
from itinerary.ids import JobId, RunId, new_row_id
from itinerary.jobs import JobSpec
from itinerary.leader import Fenced
from itinerary.messages import (
    ClaimSlot,
    Queues,
    RunCompleted,
    RunFinished,
    RunStartLateness,
    RunUpdate,
    ViolationRecord,
)
from itinerary.orchestrator import actions, constraints


class _Group(Protocol):
    """What a run needs from the cohort that claims and starts it (cohort.py)."""

    def poke(self, orchestrator: Orchestrator) -> None: ...


log = logging.getLogger(__name__)

# The outcome of an orchestrator whose slot was claimed by another scheduler.
NOT_CLAIMED = "not-claimed"
# The outcome of an orchestrator released at shutdown: the run is left for the next process.
RELEASED = "released"
_EXEC_STATES = {SUCCEEDED: states.SUCCEEDED, FAILED: states.FAILED, KILLED: states.KILLED}


@dataclass(slots=True)
class Slot:
    """What the loop hands an orchestrator: one run of one job."""

    run_id: RunId
    job: JobSpec
    scheduled_at: datetime
    trigger: str = "schedule"
    args: tuple[str, ...] | None = None  # None: the job's default args
    overrides: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    depth: int = 0  # kickOffJob: runs up the chain of parents (not kept across a restart)
    skip_reason: str | None = None  # record as skipped (skipNextInstance) instead of running
    missed_reason: str | None = None  # the slot passed unattended: apply catchUp rules
    claimed: bool = False  # restart recovery: the row exists already and is ours
    attempt: int = 1
    adopt: Execution | None = None  # restart recovery: the executor re-attached this attempt
    started_at: datetime | None = None
    # A manual or kicked-off run: answered with the run id once its row is committed, so
    # whoever asked can read the run at once (or with the reason it was not recorded).
    recorded: AsyncResult | None = None

    @property
    def job_id(self) -> JobId:
        return JobId(self.job.id or 0)

    @property
    def effective_args(self) -> tuple[str, ...]:
        return self.job.args if self.args is None else tuple(self.args)

    def request(self, attempt: int) -> RunRequest:
        """What the executor runs for an attempt: the job, with this run's args and overrides."""
        return RunRequest(
            run_id=self.run_id,
            job=self.job,
            scheduled_at=self.scheduled_at,
            attempt=attempt,
            args=self.effective_args,
            resources=self.overrides.get("resources"),
            env=dict(self.overrides.get("env") or {}),
            trigger=self.trigger,
        )


@dataclass
class _Outcome:
    status: str
    reason: str | None = None
    exit_code: int | None = None
    violation: str | None = None  # the constraint whose violation caused it


class Orchestrator:
    """Drives one run: `run()` alone, or claimed and started by a `Cohort`, then `proceed()`.

    Slotted: a burst keeps tens of thousands alive, and without an instance dict each is
    smaller and one object fewer for the cyclic collector to scan.
    """

    __slots__ = (
        "slot",
        "queues",
        "clock",
        "executor",
        "config",
        "database",
        "status",
        "error",
        "started_at",
        "cancel_reason",
        "skip_reason",
        "released",
        "finished",
        "outcome",
        "linger",
        "cohort",
        "constraints_checked",
        "actions_taken",
        "exit_code",
        "attempt",
        "admitted",
        "queued_seq",
        "_announced",
        "_behind",
        "_first",
        "_checks",
        "_request",
        "_execution",
        "_start_error",
        "_launched_at",
        "_wake",
    )

    def __init__(
        self,
        slot: Slot,
        queues: Queues,
        clock: Clock,
        executor: Executor,
        config: Config,
        database: Database | None = None,
    ) -> None:
        self.slot = slot
        self.queues = queues
        self.clock = clock
        self.executor = executor
        self.config = config
        self.database = database  # reads only (requirePreviousSuccess)
        self.status: str | None = states.SCHEDULED if slot.claimed else None
        self.error: str | None = None  # the final error, for notifications
        self.started_at = slot.started_at
        self.cancel_reason: str | None = None
        self.skip_reason: str | None = None
        self.released = False
        self.finished = False  # read by the loop
        self.outcome: str | None = None  # the final state, NOT_CLAIMED or RELEASED
        self.linger = False  # set by the loop: send RunFinished when done
        self.cohort: _Group | None = None  # until its cohort hands it its own greenlet
        self.constraints_checked = 0
        self.actions_taken = 0
        self.exit_code: int | None = None  # the final attempt's, for notifications
        self.attempt = slot.attempt
        self.admitted = False  # maxConcurrentRuns: the loop gave it a place (admission.py)
        self.queued_seq: int | None = None  # maxConcurrentRuns: its place in the queue
        self._announced = slot.adopt is not None  # on_start taken (before a restart, if adopted)
        self._behind = False
        self._first: tuple[str, str | None] = (states.SCHEDULED, None)
        self._checks: tuple[Callable[[Orchestrator], constraints.Held | None], ...] = ()
        self._request: RunRequest | None = None
        self._execution: Execution | None = None
        self._start_error: str | None = None
        self._launched_at: datetime | None = None
        self._wake: Event | None = None  # made by the greenlet that waits on it

    # --- called by the loop (same hub, never blocks) ------------------------------------

    def cancel(self, reason: str) -> None:
        """Kill the workload (or never start it); the run ends `killed` with `reason`."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._poke()

    def skip(self, reason: str) -> None:
        """skipNextInstance: if not started yet, the run ends `skipped` with `reason`."""
        if self.skip_reason is None:
            self.skip_reason = reason
        self._poke()

    def release(self) -> None:
        """Shutdown: stop orchestrating, leave the run as it is for the next process."""
        self.released = True
        self._poke()

    @property
    def started(self) -> bool:
        return self.status in (states.STARTING, states.RUNNING)

    @property
    def checks(self) -> bool:
        """Pre-execution checks to make before starting (on the run's own greenlet)."""
        return bool(self._checks)

    @property
    def held(self) -> bool:
        """Told not to start (cancelled, skipped or released)."""
        return self.released or self.cancel_reason is not None or self.skip_reason is not None

    def _poke(self) -> None:
        if self.cohort is not None:
            self.cohort.poke(self)
        if self._wake is not None:
            self._wake.set()

    # --- one run alone -------------------------------------------------------------------

    def run(self) -> None:
        """The whole lifecycle in the calling greenlet."""
        self._wake = Event()
        self.guarded(self._alone)

    def _alone(self) -> None:
        if self.slot.adopt is not None:
            self.close(self._finish(self._attempts(self.slot.adopt)))
            return
        claim = self.open_claim()
        if not self.take_claim(claim.reply if claim is not None else None):
            return
        if not self._sleep_until(self.slot.scheduled_at):
            self.drop()
            return
        self._go()

    # --- the steps a cohort drives for many runs -----------------------------------------

    def open_claim(self) -> ClaimSlot | None:
        """Decide the slot's first state and claim it; None when the row is ours already."""
        slot = self.slot
        if slot.skip_reason:
            self._first = (states.SKIPPED, slot.skip_reason)
        elif slot.missed_reason:
            reason = self._catch_up_refusal()
            self._first = (states.MISSED, reason) if reason else (states.SCHEDULED, None)
        if slot.claimed:
            return None
        status, reason = self._first
        msg = ClaimSlot(
            run_id=slot.run_id,
            job_id=slot.job_id,
            scheduled_at=slot.scheduled_at,
            trigger=slot.trigger,
            status=status,
            at=self.clock.now(),
            args=slot.effective_args,
            reason=reason,
            parent_run_id=slot.parent_run_id,
            overrides=dict(slot.overrides) or None,
        )
        self.queues.syncer.put(msg)
        return msg

    def take_claim(self, reply: AsyncResult | None) -> bool:
        """Take the claim's answer (waiting for it); True when the run goes on to its start."""
        if reply is not None and not reply.get():
            self.close(NOT_CLAIMED)
            return False
        if self.slot.recorded is not None:
            self.slot.recorded.set(self.slot.run_id)
        status, reason = self._first
        if reply is None and status != states.SCHEDULED:  # a recovered slot that passed
            self._record(status, reason=reason, completed_at=self.clock.now())
        elif reply is None and self.slot.trigger == "catchup":  # recovered, run late
            self._record(None, trigger="catchup")
        self.status = status
        if status in states.TERMINAL:
            actions.take(self, "on_missed" if status == states.MISSED else "on_skipped")
            self._report(status, None)
            self.close(status)
            return False
        self._checks = constraints.pre_checks(self.slot.job)
        self._request = self._make_request(self.slot.attempt)
        return True

    def _catch_up_refusal(self) -> str | None:
        """Why a missed slot is not run now, or None when catch-up applies."""
        job, slot = self.slot.job, self.slot
        if not job.constraints.get("catchUp"):
            return f"{slot.missed_reason}; catchUp is off"
        window = job.seconds("catchUpWindow")
        late = (self.clock.now() - slot.scheduled_at).total_seconds()
        if window is not None and late > window:
            return (
                f"{slot.missed_reason}; {format_duration(late)} late, outside catchUpWindow "
                f"{format_duration(window)}"
            )
        slot.trigger = "catchup"
        return None

    def _make_request(self, attempt: int) -> RunRequest:
        return self.slot.request(attempt)

    def warm(self) -> None:
        """Read what `launch` will read, so that a cohort's pass finds it in the caches."""
        request = self._request
        if request is not None:
            _ = (self.released, self.cancel_reason, request.run_id, request.job.constraints)

    def launch(self, attempt: int | None = None) -> None:
        """Ask the executor to start an attempt (the first by default); nothing else.

        Everything else about the start (records, stats) waits for `proceed`, so that a
        cohort's pass spends its time on starting runs.
        """
        if attempt is None:  # the first, its request made when the claim was answered
            request = self._request or self._make_request(self.slot.attempt)
            self.status = states.STARTING
        else:
            request = self._make_request(attempt)
        self.attempt = request.attempt
        self._launched_at = self.clock.now()
        try:
            self._execution = self.executor.start(request)
            self._start_error = None
        except ExecutorError as exc:
            self._execution = None
            self._start_error = f"could not start: {exc}"
        except Fenced:  # the lease may be another's: leave the run to the next leader
            self._execution = self._launched_at = None
            self.status = states.SCHEDULED if attempt is None else self.status
            self.release()

    def proceed(self) -> None:
        """Greenlet body from the start time on: checks and start unless done, then follow."""
        self._wake = Event()
        self.guarded(self._go)

    def _go(self) -> None:
        if self._launched_at is None:
            if self.held:
                self.drop()
                return
            for check in self._checks:
                held = check(self)
                if self.held:  # told to stop while it waited for a place or a dependency
                    self.drop()
                    return
                if held is not None:
                    self._refuse(held)
                    return
            self.launch()
            if self._launched_at is None:  # fenced
                self.drop()
                return
        self.close(self._finish(self._attempts(None)))

    def _refuse(self, held: constraints.Held) -> None:
        """A pre-execution constraint said no: violation, on_violation actions, `skipped`."""
        if self.status != states.WAITING:
            self._record(states.WAITING, reason=held.reason)
        self._violate(held.constraint, held.details)
        self.close(self._finish(_Outcome(states.SKIPPED, held.reason)))

    def record_waiting(self, reason: str) -> None:
        """A check holds the run back for now (queued, waiting for a dependency)."""
        self._record(states.WAITING, reason=reason)

    def pause(self, seconds: float) -> bool:
        """Wait on the clock; False (at once) when cancelled, skipped or released."""
        assert self._wake is not None
        self._wake.clear()
        if not self.held:
            self.clock.wait(self._wake, seconds)
        return not self.held

    def drop(self) -> None:
        """End a run told not to start: released (nothing recorded), skipped or cancelled."""
        if self.released:
            self.close(None)
        elif self.cancel_reason is None:
            self.close(self._finish(_Outcome(states.SKIPPED, self.skip_reason)))
        else:
            reason = f"cancelled before start: {self.cancel_reason}"
            self.close(self._finish(_Outcome(states.KILLED, reason)))

    def _sleep_until(self, when: datetime) -> bool:
        """Wait for `when`; False if cancelled, skipped or released first."""
        assert self._wake is not None
        while True:
            self._wake.clear()
            if self.held:
                return False
            left = (when - self.clock.now()).total_seconds()
            if left <= 0:
                return True
            self.clock.wait(self._wake, left)

    def guarded(self, body: Callable[[], None]) -> None:
        """Run a step; a bug in it ends the run `lost` instead of leaving it hanging."""
        try:
            body()
        except Exception as exc:
            self.crashed(exc)

    def crashed(self, exc: Exception) -> None:
        log.error("orchestrator of run %s crashed", self.slot.run_id, exc_info=exc)
        reason = f"internal error in its orchestrator: {exc!r}"
        now = self.clock.now()
        self.queues.syncer.put(
            RunUpdate(
                self.slot.run_id,
                now,
                status=states.LOST,
                reason=reason,
                error=reason,
                completed_at=now,
            )
        )
        self.close(states.LOST)

    def close(self, outcome: str | None) -> None:
        """This orchestrator is done; the loop is told only if it waits to forget the run."""
        self.finished = True
        self.outcome = outcome or RELEASED
        recorded = self.slot.recorded
        if recorded is not None and not recorded.ready():
            why = "its slot was taken" if outcome == NOT_CLAIMED else "it was let go first"
            recorded.set_exception(ValueError(f"run {self.slot.run_id} was not recorded: {why}"))
        self.cohort = None
        # The loop keeps this object for GRACE_PERIOD: let go of what it no longer needs.
        self._request = self._execution = self._wake = None
        if self.linger:
            slot = self.slot
            self.queues.scheduler.put(
                RunFinished(
                    slot.run_id, slot.job_id, slot.scheduled_at, self.outcome, self.clock.now()
                )
            )

    # --- executing -----------------------------------------------------------------------

    def _attempts(self, adopted: Execution | None) -> _Outcome | None:
        """Follow attempts until one does not fail or no retry is left; None when released.

        The first attempt was launched already (or adopted); retries are launched here.
        """
        attempt = self.slot.attempt
        while True:
            outcome = self._follow(adopted) if adopted else self._started(attempt)
            adopted = None
            if outcome is not None and outcome.status == states.SUCCEEDED:
                outcome = self._post_run(outcome)
            if outcome is None or outcome.status != states.FAILED:
                return outcome
            retry = self._retry_delay(attempt, outcome)
            if retry is None:
                return outcome
            delay, trigger = retry
            self.queues.syncer.put(
                RunUpdate(
                    self.slot.run_id,
                    self.clock.now(),
                    attempt=attempt,
                    attempt_status=states.FAILED,
                    attempt_completed_at=self.clock.now(),
                    error=outcome.reason,
                    exit_code=outcome.exit_code,
                )
            )
            actions.record(self, "retry", trigger, True, details={"attempt": attempt + 1})
            self.error = outcome.reason
            actions.attempt_failed(self)  # webhooks with afterLastRetry false may alert now
            if not self._sleep_until(self.clock.now() + timedelta(seconds=delay)):
                if self.released:
                    return None
                return _Outcome(states.KILLED, f"cancelled before retry: {self.cancel_reason}")
            attempt += 1
            self.launch(attempt)
            if self._launched_at is None:  # fenced: the next leader decides about the retry
                return None

    def _post_run(self, outcome: _Outcome) -> _Outcome | None:
        """postRunHook: a succeeded workload counts only when the hook answers 200.

        None when released at shutdown meanwhile: the next process asks the hook again.
        """
        held = constraints.check_post_run_hook(self, outcome.exit_code)
        if self.released:
            return None
        if held is None:
            return outcome
        self._violate(held.constraint, held.details)
        return _Outcome(states.FAILED, held.reason, outcome.exit_code, held.constraint)

    def _retry_delay(self, attempt: int, outcome: _Outcome) -> tuple[float, str] | None:
        """(seconds before the next attempt, the retry's trigger), or None: no retry left.

        A `retry` on_violation of the constraint that failed the attempt comes first,
        then one on_failure.
        """
        for action in sorted(self.slot.job.actions, key=lambda a: a.trigger != "on_violation"):
            if action.type != "retry":
                continue
            if action.trigger == "on_violation" and action.constraint != outcome.violation:
                continue
            if attempt > int(action.config.get("maxRetries", 1)):
                return None
            backoff = parse_duration(action.config.get("backoff", 0))
            delay = backoff * 2 ** (attempt - 1)
            cap = action.config.get("maxBackoff")
            return (min(delay, parse_duration(cap)) if cap is not None else delay), action.trigger
        return None

    def _started(self, attempt: int) -> _Outcome | None:
        """Record the launch of `attempt` (as of the moment it was asked for) and follow it."""
        slot, at = self.slot, self._launched_at
        assert at is not None
        if attempt == slot.attempt:
            self._record(states.STARTING, at=at, attempt=attempt, executor=self.executor.name)
        if self._execution is None:
            return _Outcome(states.FAILED, self._start_error)
        if attempt == 1:
            lateness = (at - slot.scheduled_at).total_seconds()
            self.queues.stats.put(RunStartLateness(slot.run_id, slot.job_id, at, lateness))
        return self._follow(self._execution)

    def _follow(self, execution: Execution) -> _Outcome | None:
        """Follow the executor's events to the final one, enforcing run-time limits."""
        assert self._wake is not None
        job = self.slot.job
        expected, allowed = job.seconds("maxExpectedRunTime"), job.seconds("maxAllowedRunTime")
        # Run-time limits count per attempt: from its own start (a retry gets its full time).
        seen_running = self.slot.adopt is execution  # re-attached: it started before
        began = (self.started_at if seen_running else None) or self.clock.now()
        kill: _Outcome | None = None
        events: deque[ExecEvent] = deque()
        pump: gevent.Greenlet | None = None
        try:
            while True:
                self._wake.clear()
                if pump is None:  # until the pump runs, take what is queued already
                    while not execution.events.empty():
                        events.append(execution.events.get_nowait())
                while events:
                    event = events.popleft()
                    if event.kind == STARTED:
                        self._record(
                            None,
                            attempt=execution.attempt,
                            handle=event.handle,
                            executor=self.executor.name,
                        )
                    elif event.kind == RUNNING:
                        self.started_at = self.started_at or event.at
                        if not seen_running:
                            seen_running, began = True, event.at
                        if not self._announced:
                            self._announced = True
                            actions.take(self, "on_start")
                        # The handle may name more now (a pod created after the Job was).
                        self._record(
                            states.RUNNING,
                            attempt=execution.attempt,
                            started_at=self.started_at,
                            attempt_started_at=began,
                            handle=event.handle,
                        )
                    elif event.final:
                        return self._outcome(event, kill)
                if self.released:
                    return None
                if self.cancel_reason is not None and kill is None:
                    kill = _Outcome(states.KILLED, f"cancelled: {self.cancel_reason}")
                    self._kill(execution, kill.reason or "")
                ran = (self.clock.now() - began).total_seconds()
                if expected is not None and ran >= expected and not self._behind:
                    self._behind = True
                    self._violation("maxExpectedRunTime", expected, ran)
                    self.queues.syncer.put(
                        RunUpdate(self.slot.run_id, self.clock.now(), behind_schedule=True)
                    )
                if allowed is not None and ran >= allowed and kill is None:
                    reason = (
                        f"maxAllowedRunTime {format_duration(allowed)} exceeded: killed after "
                        f"{format_duration(ran)}"
                    )
                    kill = _Outcome(states.FAILED, reason, violation="maxAllowedRunTime")
                    self._violation("maxAllowedRunTime", allowed, ran)
                    self._kill(execution, reason)
                deadlines = [
                    limit - ran
                    for limit, pending in ((expected, not self._behind), (allowed, kill is None))
                    if limit is not None and pending
                ]
                if pump is None:
                    pump = gevent.spawn(self._pump, execution, events, self._wake)
                self.clock.wait(self._wake, min(deadlines) if deadlines else None)
        finally:
            if pump is not None:
                pump.kill(block=False)

    def _kill(self, execution: Execution, reason: str) -> None:
        """Ask the executor to stop the attempt; a refusal is recorded, not a crash.

        The run keeps being followed: it ends when the workload does (or the executor
        reports it lost), and the error says the kill was refused.
        """
        try:
            self.executor.kill(execution, reason, self.config.kill_grace_period)
        except ExecutorError as exc:
            log.warning("run %s: kill refused by the executor: %s", self.slot.run_id, exc)
            self.queues.syncer.put(
                RunUpdate(self.slot.run_id, self.clock.now(), error=f"kill failed: {exc}")
            )

    @staticmethod
    def _pump(execution: Execution, events: deque[ExecEvent], wake: Event) -> None:
        while True:
            event = execution.events.get()
            events.append(event)
            wake.set()
            if event.final:
                return

    def _outcome(self, event: ExecEvent, kill: _Outcome | None) -> _Outcome:
        if event.kind == LOST:
            return _Outcome(states.LOST, event.reason or "the executor lost the workload")
        if event.kind == KILLED and kill is not None:
            return _Outcome(kill.status, kill.reason, event.exit_code, kill.violation)
        status = _EXEC_STATES[event.kind]
        reason = event.reason
        if status == states.FAILED and reason is None and event.exit_code is not None:
            reason = f"exit code {event.exit_code}"
        return _Outcome(status, reason, event.exit_code)

    # --- recording -----------------------------------------------------------------------

    def _record(self, status: str | None, at: datetime | None = None, **fields: Any) -> None:
        self.queues.syncer.put(
            RunUpdate(self.slot.run_id, at or self.clock.now(), status=status, **fields)
        )
        if status is not None:
            self.status = status

    def _finish(self, outcome: _Outcome | None) -> str | None:
        if outcome is None:  # released at shutdown
            return None
        now = self.clock.now()
        self.error = outcome.reason if outcome.status != states.SUCCEEDED else None
        self.exit_code = outcome.exit_code
        self._record(
            outcome.status,
            completed_at=now,
            reason=outcome.reason,
            error=self.error,
            exit_code=outcome.exit_code,
        )
        trigger = _TRIGGERS.get(outcome.status)
        if trigger is not None:
            actions.take(self, trigger)
        self._report(outcome.status, now)
        return outcome.status

    def _report(self, status: str, ended: datetime | None) -> None:
        runtime = None
        if ended is not None and self.started_at is not None:
            runtime = (ended - self.started_at).total_seconds()
        job = self.slot.job
        self.queues.stats.put(
            RunCompleted(
                self.slot.run_id,
                self.slot.job_id,
                job.name,
                status,
                self.clock.now(),
                runtime,
                self.constraints_checked,
                self.actions_taken,
            )
        )

    def _violation(self, constraint: str, limit: float, actual: float) -> None:
        self._violate(constraint, {"limit_s": limit, "actual_s": round(actual, 3)})

    def _violate(self, constraint: str, details: dict[str, Any]) -> None:
        """Record a violation row, then take the on_violation actions of that constraint."""
        vid = new_row_id()
        self.queues.syncer.put(
            ViolationRecord(vid, self.slot.run_id, constraint, self.clock.now(), details)
        )
        actions.take(self, "on_violation", constraint, vid)


# A final state -> the trigger of the actions it takes (killed runs take none).
_TRIGGERS = {
    states.SUCCEEDED: "on_success",
    states.FAILED: "on_failure",
    states.LOST: "on_failure",
    states.SKIPPED: "on_skipped",
}
