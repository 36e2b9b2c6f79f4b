"""The orchestrator: one greenlet per run, from claiming its slot to its final state.

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

Every state change goes to the syncer as a `RunUpdate` (never the database), is
mirrored to the loop as `RunStateChanged`, and the end is reported to the loop
with `RunFinished` and to the stats collector with `RunCompleted`. Start
lateness goes to the stats collector as `RunStartLateness`.

The constraint checks (`PRE_CHECKS`) and action dispatch (`ACTIONS`) are the
extension points for hooks and the remaining actions.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import gevent
from gevent.event import Event

from itinerary import states
from itinerary.clock import Clock
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
from itinerary.ids import new_row_id
from itinerary.jobs import JobSpec
from itinerary.messages import (
    ActionRunRecord,
    ClaimSlot,
    DeliverWebhook,
    KillInstances,
    QueryActive,
    Queues,
    RunCompleted,
    RunFinished,
    RunStartLateness,
    RunStateChanged,
    RunUpdate,
    SkipNext,
    ViolationRecord,
)

log = logging.getLogger(__name__)

# RunFinished.status of an orchestrator whose slot was claimed by another scheduler.
NOT_CLAIMED = "not-claimed"
# RunFinished.status of an orchestrator released at shutdown: the run is left for the next process.
RELEASED = "released"
_EXEC_STATES = {SUCCEEDED: states.SUCCEEDED, FAILED: states.FAILED, KILLED: states.KILLED}


@dataclass
class Slot:
    """What the loop hands an orchestrator: one run of one job."""

    run_id: str
    job: JobSpec
    scheduled_at: datetime
    trigger: str = "schedule"
    args: tuple[str, ...] | None = None  # None: the job's default args
    overrides: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    skip_reason: str | None = None  # record as skipped (skipNextInstance) instead of running
    missed_reason: str | None = None  # the slot passed unattended: apply catchUp rules
    claimed: bool = False  # restart recovery: the row exists already and is ours
    attempt: int = 1
    adopt: Execution | None = None  # restart recovery: the executor re-attached this attempt
    started_at: datetime | None = None

    @property
    def effective_args(self) -> tuple[str, ...]:
        return self.job.args if self.args is None else tuple(self.args)


@dataclass
class _Outcome:
    status: str
    reason: str | None = None
    exit_code: int | None = None


class Orchestrator:
    """Drives one run; `run()` is the greenlet body."""

    def __init__(
        self, slot: Slot, queues: Queues, clock: Clock, executor: Executor, config: Any
    ) -> None:
        self.slot = slot
        self.queues = queues
        self.clock = clock
        self.executor = executor
        self.config = config
        self.status: str | None = states.SCHEDULED if slot.claimed else None
        self.started_at = slot.started_at
        self.cancel_reason: str | None = None
        self.skip_reason: str | None = None
        self.released = False
        self.constraints_checked = 0
        self.actions_taken = 0
        self._behind = False
        self._wake = Event()
        self._events: deque[ExecEvent] = deque()

    # --- called by the loop (same hub, never blocks) ------------------------------------

    def cancel(self, reason: str) -> None:
        """Kill the workload (or never start it); the run ends `killed` with `reason`."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._wake.set()

    def skip(self, reason: str) -> None:
        """skipNextInstance: if not started yet, the run ends `skipped` with `reason`."""
        if self.skip_reason is None:
            self.skip_reason = reason
        self._wake.set()

    def release(self) -> None:
        """Shutdown: stop orchestrating, leave the run as it is for the next process."""
        self.released = True
        self._wake.set()

    @property
    def started(self) -> bool:
        return self.status in (states.STARTING, states.RUNNING)

    # --- the greenlet --------------------------------------------------------------------

    def run(self) -> None:
        final: str | None = None
        try:
            final = self._lifecycle()
        finally:
            slot = self.slot
            self.queues.scheduler.put(
                RunFinished(
                    slot.run_id,
                    slot.job.id or 0,
                    slot.scheduled_at,
                    final or RELEASED,
                    self.clock.now(),
                )
            )

    def _lifecycle(self) -> str | None:
        slot, job = self.slot, self.slot.job
        if slot.adopt is not None:
            return self._finish(self._attempts(slot.adopt))
        status, reason = states.SCHEDULED, None
        if slot.skip_reason:
            status, reason = states.SKIPPED, slot.skip_reason
        elif slot.missed_reason:
            reason = self._catch_up_refusal()
            status = states.MISSED if reason else states.SCHEDULED
        if not slot.claimed:
            if not self._claim(status, reason):
                return NOT_CLAIMED
            self._changed(status)
        elif status != states.SCHEDULED:  # a recovered slot that passed while we were down
            self._record(status, reason=reason, completed_at=self.clock.now())
        if status in states.TERMINAL:
            self._report(status, None)
            return status
        if not self._sleep_until(slot.scheduled_at):
            if self.released:
                return None
            if self.cancel_reason is None and self.skip_reason:
                return self._finish(_Outcome(states.SKIPPED, self.skip_reason))
            return self._finish(
                _Outcome(states.KILLED, f"cancelled before start: {self.cancel_reason}")
            )
        for check in PRE_CHECKS:
            held = check(self)
            if held:
                self._record(states.WAITING, reason=held)
                return self._finish(_Outcome(states.SKIPPED, held))
        log.debug("starting run %s of %s", slot.run_id, job.name)
        return self._finish(self._attempts(None))

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

    def _claim(self, status: str, reason: str | None) -> bool:
        slot = self.slot
        msg = ClaimSlot(
            run_id=slot.run_id,
            job_id=slot.job.id or 0,
            scheduled_at=slot.scheduled_at,
            trigger=slot.trigger,
            status=status,
            at=self.clock.now(),
            args=slot.effective_args,
            reason=reason,
            parent_run_id=slot.parent_run_id,
        )
        self.queues.syncer.put(msg)
        return bool(msg.reply.get())

    def _sleep_until(self, when: datetime) -> bool:
        """Wait for `when`; False if cancelled or released first."""
        while True:
            self._wake.clear()
            if self.cancel_reason is not None or self.released or self.skip_reason:
                return False
            left = (when - self.clock.now()).total_seconds()
            if left <= 0:
                return True
            self.clock.wait(self._wake, left)

    # --- executing -----------------------------------------------------------------------

    def _attempts(self, adopted: Execution | None) -> _Outcome | None:
        """Run attempts until one does not fail or no retry is left; None when released."""
        attempt = self.slot.attempt
        while True:
            outcome = self._follow(adopted) if adopted else self._start(attempt)
            adopted = None
            if outcome is None or outcome.status != states.FAILED:
                return outcome
            delay = self._retry_delay(attempt)
            if delay is None:
                return outcome
            self.queues.syncer.put(
                RunUpdate(
                    self.slot.run_id,
                    self.clock.now(),
                    attempt=attempt,
                    attempt_status=states.FAILED,
                    error=outcome.reason,
                    exit_code=outcome.exit_code,
                )
            )
            self._action("retry", "on_failure", True, details={"attempt": attempt + 1})
            if not self._sleep_until(self.clock.now() + timedelta(seconds=delay)):
                if self.released:
                    return None
                return _Outcome(states.KILLED, f"cancelled before retry: {self.cancel_reason}")
            attempt += 1

    def _retry_delay(self, attempt: int) -> float | None:
        """Seconds before the next attempt, or None when retries are used up."""
        for action in self.slot.job.actions:
            if action.type == "retry" and action.trigger == "on_failure":
                if attempt > int(action.config.get("maxRetries", 1)):
                    return None
                backoff = parse_duration(action.config.get("backoff", 0))
                delay = backoff * 2 ** (attempt - 1)
                cap = action.config.get("maxBackoff")
                return min(delay, parse_duration(cap)) if cap is not None else delay
        return None

    def _start(self, attempt: int) -> _Outcome | None:
        slot = self.slot
        now = self.clock.now()
        if attempt == slot.attempt:
            self._record(states.STARTING, attempt=attempt, executor=self.executor.name)
        request = RunRequest(
            run_id=slot.run_id,
            job=slot.job,
            scheduled_at=slot.scheduled_at,
            attempt=attempt,
            args=slot.effective_args,
            resources=slot.overrides.get("resources"),
            env=dict(slot.overrides.get("env") or {}),
        )
        try:
            execution = self.executor.start(request)
        except ExecutorError as exc:
            return _Outcome(states.FAILED, f"could not start: {exc}")
        if attempt == 1:
            lateness = (now - slot.scheduled_at).total_seconds()
            self.queues.stats.put(RunStartLateness(slot.run_id, slot.job.id or 0, now, lateness))
        # Let every run due at this instant start before any of them does its bookkeeping.
        gevent.sleep(0)
        return self._follow(execution)

    def _follow(self, execution: Execution) -> _Outcome | None:
        """Follow the executor's events to the final one, enforcing run-time limits."""
        job = self.slot.job
        expected, allowed = job.seconds("maxExpectedRunTime"), job.seconds("maxAllowedRunTime")
        began = self.started_at or self.clock.now()
        kill: _Outcome | None = None
        pump: gevent.Greenlet | None = None
        try:
            while True:
                self._wake.clear()
                if pump is None:  # until the pump runs, take what is queued already
                    while not execution.events.empty():
                        self._events.append(execution.events.get_nowait())
                while self._events:
                    event = self._events.popleft()
                    if event.kind == STARTED:
                        self._record(
                            None,
                            attempt=execution.attempt,
                            handle=event.handle,
                            executor=self.executor.name,
                        )
                    elif event.kind == RUNNING:
                        began = self.started_at = self.started_at or event.at
                        self._record(
                            states.RUNNING, attempt=execution.attempt, started_at=self.started_at
                        )
                    elif event.final:
                        return self._outcome(event, kill)
                if self.released:
                    return None
                if self.cancel_reason is not None and kill is None:
                    kill = _Outcome(states.KILLED, f"cancelled: {self.cancel_reason}")
                    self.executor.kill(execution, kill.reason or "", self.config.kill_grace_period)
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
                    kill = _Outcome(states.FAILED, reason)
                    self._violation("maxAllowedRunTime", allowed, ran)
                    self.executor.kill(execution, reason, self.config.kill_grace_period)
                deadlines = [
                    limit - ran
                    for limit, pending in ((expected, not self._behind), (allowed, kill is None))
                    if limit is not None and pending
                ]
                if pump is None:
                    pump = gevent.spawn(self._pump, execution)
                self.clock.wait(self._wake, min(deadlines) if deadlines else None)
        finally:
            if pump is not None:
                pump.kill(block=False)

    def _pump(self, execution: Execution) -> None:
        while True:
            event = execution.events.get()
            self._events.append(event)
            self._wake.set()
            if event.final:
                return

    def _outcome(self, event: ExecEvent, kill: _Outcome | None) -> _Outcome:
        if event.kind == LOST:
            return _Outcome(states.LOST, event.reason or "the executor lost the workload")
        if event.kind == KILLED and kill is not None:
            return _Outcome(kill.status, kill.reason, event.exit_code)
        status = _EXEC_STATES[event.kind]
        reason = event.reason
        if status == states.FAILED and reason is None and event.exit_code is not None:
            reason = f"exit code {event.exit_code}"
        return _Outcome(status, reason, event.exit_code)

    # --- recording -----------------------------------------------------------------------

    def _changed(self, status: str) -> None:
        self.status = status
        self.queues.scheduler.put(RunStateChanged(self.slot.run_id, status, self.clock.now()))

    def _record(self, status: str | None, **fields: Any) -> None:
        self.queues.syncer.put(
            RunUpdate(self.slot.run_id, self.clock.now(), status=status, **fields)
        )
        if status is not None:
            self._changed(status)

    def _finish(self, outcome: _Outcome | None) -> str | None:
        if outcome is None:  # released at shutdown
            return None
        now = self.clock.now()
        self._record(
            outcome.status,
            completed_at=now,
            reason=outcome.reason,
            error=outcome.reason if outcome.status != states.SUCCEEDED else None,
            exit_code=outcome.exit_code,
        )
        trigger = "on_success" if outcome.status == states.SUCCEEDED else "on_failure"
        if outcome.status in (states.SUCCEEDED, states.FAILED, states.LOST):
            self._take_actions(trigger, None, None)
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
                job.id or 0,
                job.name,
                status,
                self.clock.now(),
                runtime,
                self.constraints_checked,
                self.actions_taken,
            )
        )

    def _violation(self, constraint: str, limit: float, actual: float) -> None:
        vid = new_row_id()
        details = {"limit_s": limit, "actual_s": round(actual, 3)}
        self.queues.syncer.put(
            ViolationRecord(vid, self.slot.run_id, constraint, self.clock.now(), details)
        )
        self._take_actions("on_violation", constraint, vid)

    # --- actions -------------------------------------------------------------------------

    def _take_actions(self, trigger: str, constraint: str | None, violation_id: int | None) -> None:
        for action in self.slot.job.actions:
            if action.trigger != trigger or action.constraint != constraint:
                continue
            handler = ACTIONS.get(action.type)
            if handler is not None:
                handler(self, action.config, trigger, violation_id)

    def _action(
        self,
        action: str,
        trigger: str,
        ok: bool,
        violation_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.actions_taken += 1
        self.queues.syncer.put(
            ActionRunRecord(
                new_row_id(),
                self.slot.run_id,
                action,
                trigger,
                self.clock.now(),
                ok,
                violation_id=violation_id,
                details=details or {},
            )
        )

    def _kill_instances(self, latest: bool, trigger: str, violation_id: int | None) -> None:
        job = self.slot.job
        reason = (
            f"{'killLatestInstance' if latest else 'killAllInstances'} by run {self.slot.run_id}"
        )
        self.queues.scheduler.put(KillInstances(job.id or 0, latest, reason, self.clock.now()))
        self._action(
            "killLatestInstance" if latest else "killAllInstances", trigger, True, violation_id
        )

    def _skip_next(self, trigger: str, violation_id: int | None) -> None:
        job = self.slot.job
        reason = f"skipNextInstance by run {self.slot.run_id} ({trigger})"
        self.queues.scheduler.put(SkipNext(job.id or 0, reason, self.clock.now()))
        self._action("skipNextInstance", trigger, True, violation_id)

    def _webhook(self, config: dict[str, Any], trigger: str, violation_id: int | None) -> None:
        slot, job = self.slot, self.slot.job
        variables = {
            "cluster": self.config.cluster_name,
            "jobName": job.name,
            "jobNamespace": job.namespace,
            "jobCommand": " ".join(job.commands[0]) if job.commands else "",
            "jobArgs": " ".join(slot.effective_args),
            "runID": slot.run_id,
            "status": self.status,
            "error": None,
        }
        self.queues.webhooks.put(
            DeliverWebhook(
                config.get("integration"),
                config.get("url"),
                trigger,
                slot.run_id,
                job.id,
                variables,
                self.clock.now(),
                config.get("template"),
            )
        )
        self._action("webhook", trigger, True, violation_id, {"queued": True})

    # --- pre-execution constraints -------------------------------------------------------

    def _check_concurrency(self) -> str | None:
        """maxConcurrentRuns: the loop owns the list of active runs, so ask it."""
        limit = self.slot.job.constraints.get("maxConcurrentRuns")
        if limit is None:
            return None
        self.constraints_checked += 1
        query = QueryActive(self.slot.job.id, self.clock.now())
        self.queues.scheduler.put(query)
        others = [
            r.run_id
            for r in query.reply.get()
            if r.run_id != self.slot.run_id and r.status in (states.STARTING, states.RUNNING)
        ]
        if len(others) < limit:
            return None
        return f"maxConcurrentRuns {limit} reached: {', '.join(others)} still running"


# Pre-execution checks in order; each returns why the run is held back, or None.
PRE_CHECKS = (Orchestrator._check_concurrency,)
# Action type -> handler(orchestrator, config, trigger, violation_id). `retry` is driven by the
# attempt loop itself.
ACTIONS = {
    "webhook": lambda o, cfg, trig, vid: o._webhook(cfg, trig, vid),
    "killAllInstances": lambda o, cfg, trig, vid: o._kill_instances(False, trig, vid),
    "killLatestInstance": lambda o, cfg, trig, vid: o._kill_instances(True, trig, vid),
    "skipNextInstance": lambda o, cfg, trig, vid: o._skip_next(trig, vid),
}
