"""The actions a run takes, one handler per action type, and the triggers they answer.

A job's `actions` (jobs.py) name a trigger and a type. The orchestrator (run.py)
calls `take` at each trigger: `on_start` (the workload runs), `on_success`,
`on_failure` (failed or lost), `on_violation` (with the violated constraint and
its row), `on_skipped`, `on_missed`. Each action taken is recorded as an
`action_run` row through the syncer with its trigger, its violation and details.

No handler waits: the loop-side ones (kill, skip, kickOffJob) go to the loop's
inbox, webhooks to the webhook handler's, and kickOffJob waits for the loop's
answer on a greenlet of its own, since `take` may run on a cohort's greenlet.
`retry` is not dispatched here: the orchestrator's attempt loop drives it and
records it with `record`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gevent

from itinerary import templating
from itinerary.cron import zone
from itinerary.ids import JobId, new_row_id
from itinerary.messages import ActionRunRecord, DeliverWebhook, KillInstances, RunNow, SkipNext
from itinerary.orchestrator import hooks

POLICY_KEYS = ("afterFailures", "afterLastRetry", "realertEvery", "recovery")

if TYPE_CHECKING:
    from itinerary.orchestrator.run import Orchestrator

KICKOFF_REPLY_S = 30.0  # the loop answers within an iteration; this only bounds a stuck one


def take(
    o: Orchestrator, trigger: str, constraint: str | None = None, violation_id: int | None = None
) -> None:
    """Take the job's actions for `trigger` (and `constraint`, for a violation)."""
    for action in o.slot.job.actions:
        if action.trigger != trigger or action.constraint != constraint:
            continue
        handler = HANDLERS.get(action.type)
        if handler is not None:
            handler(o, action.config, trigger, violation_id)
    if trigger == "on_success":  # failure alerts' policy may owe a recovery (or a resolve)
        _notify_failure_webhooks(o, "recovery")


def attempt_failed(o: Orchestrator) -> None:
    """An attempt failed and a retry follows: webhooks with afterLastRetry false may alert."""
    _notify_failure_webhooks(o, "attempt")


def _notify_failure_webhooks(o: Orchestrator, kind: str) -> None:
    """Tell the handler about on_failure webhook actions; its alert policy decides (no record)."""
    for action in o.slot.job.actions:
        if action.type == "webhook" and action.trigger == "on_failure":
            if kind == "attempt" and action.config.get("afterLastRetry", True):
                continue
            try:
                o.queues.webhooks.put(_message(o, action.config, "on_failure", kind))
            except templating.TemplateError:
                continue  # the alert itself records the template's failure


def record(
    o: Orchestrator,
    action: str,
    trigger: str,
    ok: bool,
    violation_id: int | None = None,
    details: dict[str, Any] | None = None,
    error: str | None = None,
    count: bool = True,
) -> int:
    """Count an action taken and send its `action_run` row to the syncer; its id."""
    if count:
        o.actions_taken += 1
    row_id = new_row_id()
    o.queues.syncer.put(
        ActionRunRecord(
            row_id,
            o.slot.run_id,
            action,
            trigger,
            o.clock.now(),
            ok,
            error=error,
            violation_id=violation_id,
            details=details or {},
        )
    )
    return row_id


def variables(o: Orchestrator, trigger: str) -> dict[str, Any]:
    """What a webhook template sees: the seed's variables plus the run's context."""
    slot, job = o.slot, o.slot.job
    now, started = o.clock.now(), o.started_at
    public_url = getattr(o.config, "public_url", None)
    return {
        "cluster": o.config.cluster_name,
        "jobName": job.name,
        "jobNamespace": job.namespace,
        "jobCommand": " ".join(job.commands[0]) if job.commands else "",
        "jobArgs": " ".join(slot.effective_args),
        "runID": slot.run_id,
        "status": o.status,
        "error": o.error,
        "trigger": trigger,
        "attempt": o.attempt,
        "scheduledAt": slot.scheduled_at.isoformat().replace("+00:00", "Z"),
        # for notifications (itinerary/webhooks/): the slot in the job's zone, the figures
        "jobID": job.id,
        "runTrigger": slot.trigger,
        "slot": slot.scheduled_at.astimezone(zone(job.timezone)).isoformat(),
        "timezone": job.timezone,
        "duration": round((now - started).total_seconds(), 3) if started else None,
        "lateness": round((started - slot.scheduled_at).total_seconds(), 3) if started else None,
        "exitCode": o.exit_code,
        "runURL": f"{public_url.rstrip('/')}/runs/{slot.run_id}" if public_url else None,
    }


def _kill_instances(o: Orchestrator, latest: bool, trigger: str, violation_id: int | None) -> None:
    name = "killLatestInstance" if latest else "killAllInstances"
    reason = f"{name} by run {o.slot.run_id}"
    o.queues.scheduler.put(KillInstances(o.slot.job_id, latest, reason, o.clock.now()))
    record(o, name, trigger, True, violation_id)


def _skip_next(o: Orchestrator, trigger: str, violation_id: int | None) -> None:
    reason = f"skipNextInstance by run {o.slot.run_id} ({trigger})"
    o.queues.scheduler.put(SkipNext(o.slot.job_id, reason, o.clock.now()))
    record(o, "skipNextInstance", trigger, True, violation_id)


def _webhook(o: Orchestrator, config: dict[str, Any], trigger: str, vid: int | None) -> None:
    """Render the body (if templated) and queue the delivery; the handler records its outcome."""
    url = config.get("url")  # its query string may carry a token: never recorded
    where = {"url": hooks.safe_url(url) if url else None, "integration": config.get("integration")}
    try:
        msg = _message(o, config, trigger, "alert")
    except templating.TemplateError as exc:
        record(o, "webhook", trigger, False, vid, {"state": "not sent", **where}, str(exc))
        return
    row_id = record(o, "webhook", trigger, False, vid, {"state": "pending", **where})
    o.queues.webhooks.put(replace(msg, action_run_id=row_id))


def _message(o: Orchestrator, config: dict[str, Any], trigger: str, kind: str) -> DeliverWebhook:
    """The webhook handler's message (TemplateError when the action's template fails)."""
    slot, job = o.slot, o.slot.job
    # A recovery is told as what happened (the job succeeded), for the action's on_failure.
    values = {**variables(o, "on_success" if kind == "recovery" else trigger), "kind": kind}
    body = None
    if config.get("template") is not None:
        body = templating.render(config["template"], values)
    return DeliverWebhook(
        config.get("integration"),
        config.get("url"),
        trigger,
        slot.run_id,
        JobId(job.id) if job.id is not None else None,
        values,
        o.clock.now(),
        config.get("template"),
        body=body,
        headers=dict(config.get("headers") or {}),
        policy={k: config[k] for k in POLICY_KEYS if k in config},
        kind=kind,
    )


def _kick_off(o: Orchestrator, config: dict[str, Any], trigger: str, vid: int | None) -> None:
    """Start a run of another job through the loop (its own constraints apply)."""
    ref = config["job"]
    overrides: dict[str, Any] = {k: config[k] for k in ("resources", "env") if k in config}
    msg = RunNow(
        JobId(ref if isinstance(ref, int) else 0),
        o.clock.now(),
        args=tuple(config["args"]) if "args" in config else None,
        overrides=overrides,
        trigger="kickoff",
        parent_run_id=o.slot.run_id,
        job_name=ref if isinstance(ref, str) else None,
        depth=o.slot.depth + 1,
    )
    o.queues.scheduler.put(msg)
    o.actions_taken += 1  # counted now: the run may report its figures before the answer
    gevent.spawn(_record_kick_off, o, msg, trigger, vid)


def _record_kick_off(o: Orchestrator, msg: RunNow, trigger: str, vid: int | None) -> None:
    details: dict[str, Any] = {"job": msg.job_name or msg.job_id, "depth": msg.depth}
    try:
        child = msg.reply.get(timeout=KICKOFF_REPLY_S)
    except (Exception, gevent.Timeout) as exc:  # refused, or the loop is shutting down
        error = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        error = error or "no answer from the loop"
        record(o, "kickOffJob", trigger, False, vid, details, error, count=False)
        return
    record(o, "kickOffJob", trigger, True, vid, {**details, "childRunId": child}, count=False)


# Action type -> handler(orchestrator, config, trigger, violation_id).
HANDLERS: dict[str, Callable[[Orchestrator, dict[str, Any], str, int | None], None]] = {
    "webhook": _webhook,
    "kickOffJob": _kick_off,
    "killAllInstances": lambda o, cfg, trig, vid: _kill_instances(o, False, trig, vid),
    "killLatestInstance": lambda o, cfg, trig, vid: _kill_instances(o, True, trig, vid),
    "skipNextInstance": lambda o, cfg, trig, vid: _skip_next(o, trig, vid),
}
