"""The ScheduledRunIndex: which slots fall in a time range, answered in O(log n + k).

The scheduler loop asks the index "which runs start in (a, b]?" every
iteration, so a snapshot is two parallel arrays (fire time as a POSIX
timestamp, job id) sorted by time and searched with `bisect`. A snapshot never
changes; `IndexBuilder.rebuild` makes a new one and the loop swaps it in by
assignment (the seed's "atomically swap index").

Rebuilding stays cheap when most jobs did not change: jobs that share a
schedule and timezone share one cron cursor (their fire times are identical),
cursors remember where they stopped, and a rebuild only cuts the expired head
off the previous snapshot and appends the runs that entered the window. The
cost follows the runs added, not the jobs defined. A changed job is re-placed
on its own: its old entries are filtered out and its runs in the window are
computed once and merged in.

No I/O, no clock: `now` is always passed in.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from itinerary.cron import Schedule
from itinerary.jobs import JobSpec

# Above this many out-of-order entries a merge re-sorts instead of inserting one by one.
_INSERT_LIMIT = 64


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class ScheduledRunIndex:
    """An immutable, time-sorted snapshot of the slots in `(lo, hi]`."""

    __slots__ = ("_times", "_jobs", "lo", "hi")

    def __init__(self, times: array, jobs: array, lo: datetime, hi: datetime) -> None:
        self._times = times
        self._jobs = jobs
        self.lo = lo
        self.hi = hi

    @classmethod
    def empty(cls, at: datetime) -> ScheduledRunIndex:
        return cls(array("d"), array("q"), at, at)

    def __len__(self) -> int:
        return len(self._times)

    def between(self, start: datetime, end: datetime) -> list[tuple[int, datetime]]:
        """Slots `(job_id, scheduled_at)` with start < scheduled_at <= end, in time order."""
        times = self._times
        first = bisect_right(times, _ts(start))
        last = bisect_right(times, _ts(end))
        jobs = self._jobs
        return [(jobs[i], _dt(times[i])) for i in range(first, last)]

    def instants(self, start: datetime, end: datetime) -> list[tuple[datetime, array]]:
        """The same slots grouped by instant: `(scheduled_at, job ids)`, in time order.

        What the loop queries every iteration: thousands of jobs share a minute, and one
        datetime per instant instead of one per slot keeps that query cheap.
        """
        times, jobs = self._times, self._jobs
        i, last = bisect_right(times, _ts(start)), bisect_right(times, _ts(end))
        out = []
        while i < last:
            ts = times[i]
            j = bisect_right(times, ts, i, last)
            out.append((_dt(ts), jobs[i:j]))
            i = j
        return out

    def next_for(self, job_id: int, after: datetime) -> datetime | None:
        """The job's first slot strictly after `after`, if the snapshot holds one."""
        times, jobs = self._times, self._jobs
        for i in range(bisect_right(times, _ts(after)), len(times)):
            if jobs[i] == job_id:
                return _dt(times[i])
        return None


@dataclass
class _Group:
    """Jobs with the same schedule and timezone, and where their cursor stopped."""

    schedule: Schedule
    jobs: set[int] = field(default_factory=set)
    fires: Iterator[datetime] | None = None
    seq: int = 0  # the sequence number of this group's live heap entry


class IndexBuilder:
    """Keeps cron cursors between rebuilds and makes new snapshots from the old one."""

    def __init__(self, grace_period: float, lookahead_window: float) -> None:
        self.grace = timedelta(seconds=grace_period)
        self.lookahead = timedelta(seconds=lookahead_window)
        self.index: ScheduledRunIndex | None = None
        self._groups: dict[tuple[str, str], _Group] = {}
        self._job_group: dict[int, tuple[str, str]] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._seq = 0
        self._dirty: set[int] = set()
        self._added: set[int] = set()

    def __len__(self) -> int:
        return len(self._job_group)

    def set_jobs(self, jobs: list[JobSpec]) -> None:
        """Replace every job (start-up); the next rebuild starts from scratch."""
        self.index = None
        self._groups.clear()
        self._job_group.clear()
        self._heap.clear()
        self._dirty.clear()
        self._added.clear()
        for job in jobs:
            self._place(job)

    def set_job(self, job: JobSpec) -> None:
        """A job was created or changed: its entries are recomputed at the next rebuild."""
        assert job.id is not None
        self.remove_job(job.id)
        if self._place(job):
            self._added.add(job.id)

    def remove_job(self, job_id: int) -> None:
        key = self._job_group.pop(job_id, None)
        if key is None:
            return
        self._dirty.add(job_id)
        self._added.discard(job_id)
        group = self._groups[key]
        group.jobs.discard(job_id)
        if not group.jobs:  # its heap entry is now stale and skipped by `_advance`
            del self._groups[key]

    def _place(self, job: JobSpec) -> bool:
        """Put a schedulable job in its group; False for paused or manual-only jobs."""
        if job.id is None or not job.schedule or not job.enabled or job.archived_at:
            return False
        key = (job.schedule, job.timezone)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(Schedule(job.schedule, job.timezone))
        group.jobs.add(job.id)
        self._job_group[job.id] = key
        return True

    def _push(self, key: tuple[str, str], group: _Group) -> None:
        assert group.fires is not None
        self._seq += 1
        group.seq = self._seq
        heapq.heappush(self._heap, (_ts(next(group.fires)), self._seq, key))

    def rebuild(self, now: datetime) -> ScheduledRunIndex:
        """A snapshot of `(now - grace, now + lookahead]`; the cost follows the runs added."""
        lo, hi = now - self.grace, now + self.lookahead
        lo_ts, hi_ts = _ts(lo), _ts(hi)
        old = self.index
        if old is None or old.hi <= lo:  # first build, or time jumped past the whole window
            old = None
            times, jobs = array("d"), array("q")
            prev_hi = lo
            self._heap.clear()
            for key, group in self._groups.items():
                group.fires = group.schedule.iter_after(lo)
                self._push(key, group)
        else:
            cut = bisect_right(old._times, lo_ts)
            times, jobs = old._times[cut:], old._jobs[cut:]
            prev_hi = max(old.hi, lo)
            if self._dirty:
                times, jobs = self._without(times, jobs, self._dirty)
        for key in {self._job_group[j] for j in self._added}:
            group = self._groups[key]
            if group.fires is None:  # a new group: its cursor starts where the window does
                group.fires = group.schedule.iter_after(prev_hi)
                self._push(key, group)
        late = self._backfill(lo, prev_hi) if old is not None else []
        self._advance(hi_ts, times, jobs)
        if late:
            times, jobs = self._merge(times, jobs, late)
        self._dirty.clear()
        self._added.clear()
        self.index = ScheduledRunIndex(times, jobs, lo, hi)
        return self.index

    def _advance(self, hi_ts: float, times: array, jobs: array) -> None:
        """Append every group's fire times up to `hi_ts`, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= hi_ts:
            ts, seq, key = heapq.heappop(heap)
            group = self._groups.get(key)
            if group is None or group.seq != seq:
                continue  # the group emptied (or was re-created) since this entry was pushed
            members = sorted(group.jobs)
            times.extend([ts] * len(members))
            jobs.extend(members)
            self._push(key, group)

    def _backfill(self, lo: datetime, prev_hi: datetime) -> list[tuple[float, int]]:
        """Slots in `(lo, prev_hi]` of jobs added since the last rebuild (out of order)."""
        out: list[tuple[float, int]] = []
        for job_id in self._added:
            schedule = self._groups[self._job_group[job_id]].schedule
            for fire in schedule.iter_after(lo):
                if fire > prev_hi:
                    break
                out.append((_ts(fire), job_id))
        return out

    @staticmethod
    def _without(times: array, jobs: array, gone: set[int]) -> tuple[array, array]:
        keep = [i for i, j in enumerate(jobs) if j not in gone]
        return array("d", (times[i] for i in keep)), array("q", (jobs[i] for i in keep))

    @staticmethod
    def _merge(times: array, jobs: array, extra: list[tuple[float, int]]) -> tuple[array, array]:
        if len(extra) <= _INSERT_LIMIT:
            for ts, job_id in extra:
                i = bisect_left(times, ts)
                times.insert(i, ts)
                jobs.insert(i, job_id)
            return times, jobs
        pairs = list(zip(times, jobs, strict=True))
        pairs.extend(extra)
        pairs.sort()
        return array("d", (p[0] for p in pairs)), array("q", (p[1] for p in pairs))
