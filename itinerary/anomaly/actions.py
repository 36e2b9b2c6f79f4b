"""`on_anomaly` actions: what a job asks for when one of its runs (or slots) is unusual.

The orchestrator's actions (`itinerary/orchestrator/actions.py`) act for a run it is
following; an anomaly is found later and elsewhere, so its actions are dispatched
here, with the same messages: a webhook goes to the webhook handler (its variables
carry the anomaly's kind and explanation; the action's `template` is rendered in the
sandbox and its `headers` sent, as for any webhook action), kill and skip go to the
loop. Each action taken for a run is recorded as an `action_run` row like any other
(a webhook's as pending, completed by the handler with the delivery's outcome).
`retry` and `kickOffJob` are refused for this trigger by the job validator.
"""

from __future__ import annotations

from typing import Any

from itinerary import messages, templating
from itinerary.clock import Clock
from itinerary.ids import JobId, new_row_id
from itinerary.jobs import JobSpec

TRIGGER = "on_anomaly"
TYPES = ("webhook", "killAllInstances", "killLatestInstance", "skipNextInstance")


def fire(
    queues: messages.Queues,
    clock: Clock,
    job: JobSpec,
    anomaly: messages.AnomalyRecord,
    cluster: str = "",
) -> int:
    """Take `job`'s on_anomaly actions for `anomaly`; how many were taken."""
    taken = 0
    for action in job.actions:
        if action.trigger != TRIGGER or action.type not in TYPES:
            continue
        now = clock.now()
        details: dict[str, Any] = {"anomaly": str(anomaly.id), "kind": anomaly.kind}
        if action.type == "webhook":
            _webhook(queues, job, anomaly, action.config, cluster, now, details)
            taken += 1
            continue
        if action.type == "skipNextInstance":
            reason = f"skipNextInstance on an anomaly ({anomaly.kind}): {anomaly.explanation}"
            queues.scheduler.put(messages.SkipNext(JobId(job.id or 0), reason, now))
        else:
            latest = action.type == "killLatestInstance"
            reason = f"{action.type} on an anomaly ({anomaly.kind}): {anomaly.explanation}"
            queues.scheduler.put(messages.KillInstances(JobId(job.id or 0), latest, reason, now))
        taken += 1
        if anomaly.run_id is not None:  # action_runs rows belong to a run
            queues.syncer.put(
                messages.ActionRunRecord(
                    new_row_id(), anomaly.run_id, action.type, TRIGGER, now, True, details=details
                )
            )
    return taken


def _webhook(
    queues: messages.Queues,
    job: JobSpec,
    anomaly: messages.AnomalyRecord,
    config: dict[str, Any],
    cluster: str,
    now: Any,
    details: dict[str, Any],
) -> None:
    """Queue the delivery (the template rendered here); record it pending, or why not sent."""
    variables = {
        "cluster": cluster,
        "jobName": job.name,
        "jobNamespace": job.namespace,
        "jobCommand": " ".join(job.commands[0]) if job.commands else "",
        "jobArgs": " ".join(job.args),
        "jobID": job.id,
        "runID": anomaly.run_id,
        "status": f"anomaly: {anomaly.kind}",
        "error": anomaly.explanation,
        "trigger": TRIGGER,
        "anomalyKind": anomaly.kind,
        "explanation": anomaly.explanation,
        "score": anomaly.score,
    }
    row_id = new_row_id()
    try:
        body = templating.render(config["template"], variables) if config.get("template") else None
    except templating.TemplateError as exc:
        _record(queues, anomaly, row_id, now, False, {**details, "state": "not sent"}, str(exc))
        return
    _record(queues, anomaly, row_id, now, False, {**details, "state": "pending"}, None)
    queues.webhooks.put(
        messages.DeliverWebhook(
            config.get("integration"),
            config.get("url"),
            TRIGGER,
            anomaly.run_id,
            JobId(job.id) if job.id is not None else None,
            variables,
            now,
            config.get("template"),
            body=body,
            headers=dict(config.get("headers") or {}),
            action_run_id=row_id if anomaly.run_id is not None else None,
        )
    )


def _record(
    queues: messages.Queues,
    anomaly: messages.AnomalyRecord,
    row_id: int,
    now: Any,
    success: bool,
    details: dict[str, Any],
    error: str | None,
) -> None:
    if anomaly.run_id is None:  # a silent slot has no run: no action_runs row
        return
    queues.syncer.put(
        messages.ActionRunRecord(
            row_id, anomaly.run_id, "webhook", TRIGGER, now, success, error=error, details=details
        )
    )
