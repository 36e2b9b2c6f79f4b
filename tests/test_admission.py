"""maxConcurrentRuns admission on the loop's side: who starts, who waits, who is replaced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itinerary.messages import AdmitRun
from itinerary.orchestrator import admit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Run:
    """The orchestrator attributes admission reads, and `cancel`."""

    started: bool = False
    started_at: datetime | None = None
    admitted: bool = False
    queued_seq: int | None = None
    cancel_reason: str | None = None
    held: bool = False

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason


@dataclass
class Entry:
    orchestrator: Run
    job_id: int = 1
    scheduled_at: datetime = T0
    done: bool = False


def loop_with(*runs: Run) -> dict[str, Entry]:
    return {f"r{i}": Entry(run) for i, run in enumerate(runs)}


def ask(active: dict[str, Entry], run_id: str, overlap: str = "skip", queue_limit: int = 0):  # type: ignore[no-untyped-def]
    return admit(AdmitRun(run_id, 1, 2, overlap, queue_limit, T0), active)


def test_it_admits_while_places_are_free_and_counts_the_admitted() -> None:
    active = loop_with(Run(), Run(), Run())
    assert ask(active, "r0")[0] == "start" and ask(active, "r1")[0] == "start"
    # It should count runs admitted but not started yet: two asking at once cannot both pass.
    assert ask(active, "r2") == ("full", ["r0", "r1"])


def test_it_queues_in_order_up_to_the_queue_limit() -> None:
    active = loop_with(Run(started=True), Run(started=True), Run(), Run(), Run())
    assert ask(active, "r2", "queue", 2)[0] == "queue"
    assert ask(active, "r3", "queue", 2)[0] == "queue"
    assert ask(active, "r4", "queue", 2)[0] == "full"
    active["r0"].done = True
    # It should give the freed place to the first in the queue, not to a later one.
    assert (
        ask(active, "r3", "queue", 2)[0] == "queue" and ask(active, "r2", "queue", 2)[0] == "start"
    )


def test_it_replaces_the_oldest_running_instance_once() -> None:
    old, new = Run(True, T0), Run(True, T0 + timedelta(minutes=1))
    active = loop_with(old, new, Run())
    assert ask(active, "r2", "replace")[0] == "queue"
    assert old.cancel_reason == "replaced by run r2 (maxConcurrentRuns overlap replace)"
    assert ask(active, "r2", "replace")[0] == "queue" and new.cancel_reason is None
    active["r0"].done = True
    assert ask(active, "r2", "replace")[0] == "start"
