"""A run's life and the anomalies found in it: the models of migration 006.

`run_events` rows are not sent by anyone: the syncer derives them from the claims and
run updates it applies (`batch_sql.Merge`), in the same transaction, so every state
change that reaches the database has its event and a refused one (older, or out of a
terminal state) has none. The orchestrator and the loop are unaware of them.

`anomalies` rows come from the anomaly detector (`itinerary/anomaly/`) through the
syncer (`messages.AnomalyRecord`, kind "anomalies").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import peewee as pw

from itinerary.models import BaseModel, JSONField, UTCDateTimeField, tuples


class RunEvent(BaseModel):
    id = pw.BigAutoField()
    run_id = pw.CharField()
    attempt = pw.IntegerField(null=True)
    scope = pw.CharField()  # "run" or "attempt"
    from_status = pw.CharField(null=True)
    status = pw.CharField()
    at = UTCDateTimeField()
    reason = pw.TextField(null=True)

    class Meta:
        table_name = "run_events"


class Anomaly(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    job_id = pw.BigIntegerField()
    run_id = pw.CharField(null=True)
    slot_at = UTCDateTimeField(null=True)
    kind = pw.CharField()
    detected_at = UTCDateTimeField()
    score = pw.DoubleField()
    baseline = JSONField(default=dict)
    explanation = pw.TextField()

    class Meta:
        table_name = "anomalies"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def events_of(run_id: str) -> list[dict[str, Any]]:
    """A run's events in order (time, then the order they were written)."""
    rows = tuples(
        RunEvent.select().where(RunEvent.run_id == run_id).order_by(RunEvent.at, RunEvent.id)
    )
    cols = [f.name for f in RunEvent._meta.sorted_fields]
    out: list[dict[str, Any]] = []
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        event = {
            "at": _iso(RunEvent.at.python_value(r["at"])),
            "scope": r["scope"],
            "attempt": r["attempt"],
            "from": r["from_status"],
            "to": r["status"],
            "reason": r["reason"],
        }
        if not out or out[-1] != event:  # a retried claim's repeat (see batch_sql)
            out.append(event)
    return out


def anomaly_json(a: Anomaly) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "jobId": a.job_id,
        "runId": a.run_id,
        "slotAt": _iso(a.slot_at),
        "kind": a.kind,
        "detectedAt": _iso(a.detected_at),
        "score": round(a.score, 3),
        "baseline": a.baseline,
        "explanation": a.explanation,
    }


def anomalies_of_job(
    job_id: int, since: datetime, limit: int, after: tuple[datetime, int] | None = None
) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
    """A page of a job's anomalies detected since `since`, newest first, after the
    (detected_at, id) key `after`; and the key to continue from (None on the last page)."""
    query = Anomaly.select().where((Anomaly.job_id == job_id) & (Anomaly.detected_at >= since))
    if after is not None:
        at, ident = after
        query = query.where(
            (Anomaly.detected_at < at) | ((Anomaly.detected_at == at) & (Anomaly.id < ident))
        )
    rows = list(query.order_by(Anomaly.detected_at.desc(), Anomaly.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    key = (rows[-1].detected_at.isoformat(), rows[-1].id) if more else None
    return [anomaly_json(a) for a in rows], key


def anomalies_of_run(run_id: str) -> list[dict[str, Any]]:
    rows = Anomaly.select().where(Anomaly.run_id == run_id).order_by(Anomaly.detected_at)
    return [anomaly_json(a) for a in rows]
