"""The actions an orchestrator takes on success, failure or a constraint violation.

A job's `actions` (jobs.py) name a trigger (`on_success`, `on_failure`,
`on_violation` with its constraint) and a type. Each action taken is recorded as
an `action_run` row through the syncer; the loop-side ones (kill, skip) go to the
loop's inbox, webhooks to the webhook handler's. `retry` is not dispatched here:
the orchestrator's attempt loop drives it and records it with `record`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from itinerary.ids import new_row_id
from itinerary.messages import ActionRunRecord, DeliverWebhook, KillInstances, SkipNext

if TYPE_CHECKING:
    from itinerary.orchestrator.run import Orchestrator


def take(o: Orchestrator, trigger: str, constraint: str | None, violation_id: int | None) -> None:
    """Take the job's actions for `trigger` (and `constraint`, for a violation)."""
    for action in o.slot.job.actions:
        if action.trigger != trigger or action.constraint != constraint:
            continue
        handler = HANDLERS.get(action.type)
        if handler is not None:
            handler(o, action.config, trigger, violation_id)


def record(
    o: Orchestrator,
    action: str,
    trigger: str,
    ok: bool,
    violation_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Count an action taken and send its `action_run` row to the syncer."""
    o.actions_taken += 1
    o.queues.syncer.put(
        ActionRunRecord(
            new_row_id(),
            o.slot.run_id,
            action,
            trigger,
            o.clock.now(),
            ok,
            violation_id=violation_id,
            details=details or {},
        )
    )


def _kill_instances(o: Orchestrator, latest: bool, trigger: str, violation_id: int | None) -> None:
    name = "killLatestInstance" if latest else "killAllInstances"
    reason = f"{name} by run {o.slot.run_id}"
    o.queues.scheduler.put(KillInstances(o.slot.job.id or 0, latest, reason, o.clock.now()))
    record(o, name, trigger, True, violation_id)


def _skip_next(o: Orchestrator, trigger: str, violation_id: int | None) -> None:
    reason = f"skipNextInstance by run {o.slot.run_id} ({trigger})"
    o.queues.scheduler.put(SkipNext(o.slot.job.id or 0, reason, o.clock.now()))
    record(o, "skipNextInstance", trigger, True, violation_id)


def _webhook(o: Orchestrator, config: dict[str, Any], trigger: str, vid: int | None) -> None:
    slot, job = o.slot, o.slot.job
    variables = {
        "cluster": o.config.cluster_name,
        "jobName": job.name,
        "jobNamespace": job.namespace,
        "jobCommand": " ".join(job.commands[0]) if job.commands else "",
        "jobArgs": " ".join(slot.effective_args),
        "runID": slot.run_id,
        "status": o.status,
        "error": o.error,
    }
    o.queues.webhooks.put(
        DeliverWebhook(
            config.get("integration"),
            config.get("url"),
            trigger,
            slot.run_id,
            job.id,
            variables,
            o.clock.now(),
            config.get("template"),
        )
    )
    record(o, "webhook", trigger, True, vid, {"queued": True})


# Action type -> handler(orchestrator, config, trigger, violation_id).
HANDLERS: dict[str, Callable[[Orchestrator, dict[str, Any], str, int | None], None]] = {
    "webhook": _webhook,
    "killAllInstances": lambda o, cfg, trig, vid: _kill_instances(o, False, trig, vid),
    "killLatestInstance": lambda o, cfg, trig, vid: _kill_instances(o, True, trig, vid),
    "skipNextInstance": lambda o, cfg, trig, vid: _skip_next(o, trig, vid),
}
