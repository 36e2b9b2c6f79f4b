"""`on_anomaly` actions: what a job asks for when one of its runs (or slots) is unusual.

The orchestrator's actions (`itinerary/actions.py`) act for a run it is following;
an anomaly is found later and elsewhere, so its actions are dispatched here, with the
same messages: a webhook goes to the webhook handler (its variables carry the
anomaly's kind and explanation), kill and skip go to the loop. Each action taken for
a run is recorded as an `action_run` row like any other. `retry` and `kickOffJob`
are refused for this trigger by the job validator.
"""

from __future__ import annotations

from typing import Any

from itinerary import messages
from itinerary.clock import Clock
from itinerary.ids import new_row_id
from itinerary.jobs import JobSpec

TRIGGER = "on_anomaly"
TYPES = ("webhook", "killAllInstances", "killLatestInstance", "skipNextInstance")


def fire(
    queues: messages.Queues, clock: Clock, job: JobSpec, anomaly: messages.AnomalyRecord
) -> int:
    """Take `job`'s on_anomaly actions for `anomaly`; how many were taken."""
    taken = 0
    for action in job.actions:
        if action.trigger != TRIGGER or action.type not in TYPES:
            continue
        now = clock.now()
        details: dict[str, Any] = {"anomaly": str(anomaly.id), "kind": anomaly.kind}
        if action.type == "webhook":
            cfg = action.config
            variables = {
                "jobName": job.name,
                "jobNamespace": job.namespace,
                "runID": anomaly.run_id,
                "status": f"anomaly: {anomaly.kind}",
                "error": anomaly.explanation,
                "anomalyKind": anomaly.kind,
                "explanation": anomaly.explanation,
                "score": anomaly.score,
            }
            queues.webhooks.put(
                messages.DeliverWebhook(
                    cfg.get("integration"),
                    cfg.get("url"),
                    TRIGGER,
                    anomaly.run_id,
                    job.id,
                    variables,
                    now,
                    cfg.get("template"),
                )
            )
            details["queued"] = True
        elif action.type == "skipNextInstance":
            reason = f"skipNextInstance on an anomaly ({anomaly.kind}): {anomaly.explanation}"
            queues.scheduler.put(messages.SkipNext(job.id or 0, reason, now))
        else:
            latest = action.type == "killLatestInstance"
            reason = f"{action.type} on an anomaly ({anomaly.kind}): {anomaly.explanation}"
            queues.scheduler.put(messages.KillInstances(job.id or 0, latest, reason, now))
        taken += 1
        if anomaly.run_id is not None:  # action_runs rows belong to a run
            queues.syncer.put(
                messages.ActionRunRecord(
                    new_row_id(), anomaly.run_id, action.type, TRIGGER, now, True, details=details
                )
            )
    return taken
