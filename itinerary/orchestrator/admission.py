"""maxConcurrentRuns admission: the loop's side of the overlap policies.

Runs ask the loop (`AdmitRun`) instead of counting for themselves: the loop
answers one message at a time, so 50 runs asking in the same instant cannot all
see "2 running" and all start. A run admitted holds its place until it ends;
waiting runs (overlap `queue`, or `replace` while the oldest instance is being
killed) keep their order, and a newcomer never jumps ahead of them. Pure
bookkeeping on the loop's in-memory entries: no I/O, nothing that waits.
"""

from __future__ import annotations

import itertools
from typing import Any

from itinerary.ids import RunId
from itinerary.messages import AdmitRun

_queue_seq = itertools.count(1)


def admit(msg: AdmitRun, active: dict[RunId, Any]) -> tuple[str, list[str]]:
    """The loop's answer to `msg`: ("start" | "queue" | "full", running run ids, oldest first)."""
    entry = active.get(msg.run_id)
    me = entry.orchestrator if entry is not None else None
    taken: list[tuple[Any, str, Any]] = []
    waiting: list[int] = []
    for run_id, e in active.items():
        if run_id == msg.run_id or e.job_id != msg.job_id or e.done:
            continue
        o = e.orchestrator
        if o.started or o.admitted:
            taken.append((o.started_at or e.scheduled_at, run_id, o))
        elif o.queued_seq is not None and not o.held:
            waiting.append(o.queued_seq)
    taken.sort(key=lambda t: (t[0], t[1]))
    running = [run_id for _, run_id, _ in taken]
    mine = me.queued_seq if me is not None else None
    ahead = sum(1 for seq in waiting if mine is None or seq < mine)
    if len(taken) + ahead < msg.limit:
        if me is not None:
            me.admitted, me.queued_seq = True, None
        return "start", running
    if msg.overlap == "replace":
        victims = [o for _, _, o in taken if o.cancel_reason is None]
        if victims and len(victims) + ahead >= msg.limit:
            victims[0].cancel(f"replaced by run {msg.run_id} (maxConcurrentRuns overlap replace)")
    elif msg.overlap != "queue" or (mine is None and len(waiting) >= msg.queue_limit):
        return "full", running
    if me is not None and mine is None:
        me.queued_seq = next(_queue_seq)
    return "queue", running
