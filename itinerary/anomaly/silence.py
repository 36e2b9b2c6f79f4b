"""Silence: slots a job's schedule says should have started and that have no run record.

A slot missed while Itinerary was down is normally recorded (`missed`) by the
scheduler when it starts again; a slot with no record at all means nobody looked at
it: a process down for longer than the scheduler looks back, a job paused and
resumed (its paused slots are not silent: `since` starts at its last change), a
bug. Pure: the detector reads the records and hands them in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from itinerary.jobs import JobSpec

MAX_PER_JOB = 100  # slots examined per job and check (an every-minute job after a long gap)


def silent_slots(
    jobs: Iterable[JobSpec],
    since: datetime,
    until: datetime,
    recorded: set[tuple[int, datetime]],
) -> list[tuple[JobSpec, datetime]]:
    """(job, slot) for each slot in (since, until] of an enabled job with no record."""
    out = []
    for job in jobs:
        if not job.enabled or not job.schedule or job.id is None:
            continue
        start = max(since, job.updated_at or since, job.created_at or since)
        for n, fire in enumerate(job.cron.iter_after(start)):  # type: ignore[union-attr]
            if fire > until or n >= MAX_PER_JOB:
                break
            slot = fire.astimezone(UTC)
            if (job.id, slot) not in recorded:
                out.append((job, slot))
    return out


def slot_anomaly_id(job_id: int, slot: datetime) -> int:
    """The same positive 63-bit id for the same silent slot, whoever finds it, however often."""
    digest = hashlib.blake2b(f"silence:{job_id}:{slot.timestamp()}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


def run_anomaly_id(run_id: str, kind: str) -> int:
    digest = hashlib.blake2b(f"{kind}:{run_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1
