"""The detector's per-job baselines and scores: pure, no I/O, each update and score cheap.

A `Window` keeps a job's last N values sorted (bisect), so its median is read in
O(1) and its MAD (median absolute deviation) computed lazily once per change, over
at most N values: scoring a finished run against a warm baseline costs microseconds
(bench/anomaly.py measures it as `score_p99_us`).

Durations are scored on their logarithm, so "twice as slow" and "twice as fast" are
the same distance and the long right tail of run times does not raise false alarms;
the explanation still speaks in plain durations. A run is compared with the flat
baseline (the job's last 50 successful runs) and, once they hold enough runs, with
its hour of day and its day of week (in the job's timezone): the least surprising of
these decides, so a job that is slow every night at 02:00 is not flagged at 02:00,
and a genuinely odd run is odd by all of them.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from itinerary.durations import format_duration

DURATION_N, SEASON_N, LATENESS_N = 50, 20, 50
MIN_SAMPLES = 10  # fewer successful runs than this: nothing is flagged
# An hour-of-day or day-of-week window speaks once it has this many runs: it can only
# excuse a run (the least surprising baseline decides), never flag one on its own.
MIN_SEASONAL = 3
DURATION_MADS = 6.0  # |log-duration - median| above this many MADs is an anomaly
LOG_MAD_FLOOR = 0.03  # a steady job's MAD is at least 3% (in log terms)
MIN_DURATION_GAP_S = 1.0  # and the run differs from the median by at least a second
LATENESS_MADS = 6.0
LATENESS_MAD_FLOOR_S = 2.0  # so a start at least 12 s later than usual
OUTCOMES_N, RECENT_N, MIN_BASELINE_RUNS = 200, 20, 20
FAILURE_ALPHA = 1e-4  # a binomial tail (or a streak) less likely than this is flagged
MIN_STREAK = 3
DAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


class Window:
    """The last `size` values, kept sorted too: median and MAD on demand."""

    __slots__ = ("size", "recent", "ordered", "_mad")

    def __init__(self, size: int, values: list[float] | None = None) -> None:
        self.size = size
        self.recent: deque[float] = deque()
        self.ordered: list[float] = []
        self._mad: float | None = None
        for v in values or ():
            self.add(v)

    def __len__(self) -> int:
        return len(self.recent)

    def add(self, value: float) -> None:
        if len(self.recent) == self.size:
            old = self.recent.popleft()
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.recent.append(value)
        bisect.insort(self.ordered, value)
        self._mad = None

    def median(self) -> float:
        o, n = self.ordered, len(self.ordered)
        return o[n // 2] if n % 2 else (o[n // 2 - 1] + o[n // 2]) / 2

    def mad(self) -> float:
        if self._mad is None:
            m = self.median()
            dev = sorted(abs(v - m) for v in self.ordered)
            n = len(dev)
            self._mad = dev[n // 2] if n % 2 else (dev[n // 2 - 1] + dev[n // 2]) / 2
        return self._mad


@dataclass(frozen=True)
class Finding:
    """What a model found: a score (signed MADs, or -log10 p), its baseline, in words."""

    kind: str
    score: float
    baseline: dict[str, Any]
    explanation: str


def _mads(score: float) -> str:
    return f"{abs(score):.1f} MADs {'above' if score > 0 else 'below'}"


@dataclass
class DurationModel:
    """A job's successful run durations: flat, by hour of day, by day of week."""

    flat: Window = field(default_factory=lambda: Window(DURATION_N))
    hours: dict[int, Window] = field(default_factory=dict)
    days: dict[int, Window] = field(default_factory=dict)

    def add(self, seconds: float, hour: int, weekday: int) -> None:
        value = math.log(max(seconds, 0.001))
        self.flat.add(value)
        self.hours.setdefault(hour, Window(SEASON_N)).add(value)
        self.days.setdefault(weekday, Window(SEASON_N)).add(value)

    def score(self, seconds: float, hour: int, weekday: int) -> Finding | None:
        """A finding when `seconds` is unusual against every baseline that can judge it."""
        if len(self.flat) < MIN_SAMPLES:
            return None
        value = math.log(max(seconds, 0.001))
        best: tuple[float, float, float, int, str] | None = None
        by_hour, by_day = self.hours.get(hour), self.days.get(weekday)
        at, on = f"at {hour:02d}:00", f"on {DAYS[weekday]}"
        # (expected log-duration, its spread, runs behind it, what they are)
        candidates = [(self.flat.median(), self.flat.mad(), len(self.flat), "")]
        for w, label in ((by_hour, at), (by_day, on)):
            if w is not None and len(w) >= MIN_SEASONAL:
                candidates.append((w.median(), w.mad(), len(w), label))
        if len(candidates) == 3:  # both effects at once: 02:00 on a Saturday
            assert by_hour is not None and by_day is not None
            both = by_hour.median() + by_day.median() - self.flat.median()
            spread = max(by_hour.mad(), by_day.mad())
            candidates.append((both, spread, len(by_hour) + len(by_day), f"{at} {on}"))
        for expected, spread, runs, label in candidates:
            s = (value - expected) / max(spread, LOG_MAD_FLOOR)
            if best is None or abs(s) < abs(best[0]):
                best = (s, expected, spread, runs, label)
        assert best is not None
        s, expected, spread, count, label = best
        median_s = math.exp(expected)
        if abs(s) < DURATION_MADS or abs(seconds - median_s) < MIN_DURATION_GAP_S:
            return None
        seen = f"the last {count} successful runs" + (f" {label}" if label else "")
        return Finding(
            "duration",
            round(s, 3),
            {
                "runs": count,
                "medianSeconds": round(median_s, 3),
                "madLog": round(spread, 4),
                "season": label or None,
            },
            f"took {format_duration(seconds)}; {seen} took {format_duration(median_s)} "
            f"median, {_mads(s)}",
        )


@dataclass
class LatenessModel:
    """How long after its slot a job's runs start (one-sided: late only)."""

    window: Window = field(default_factory=lambda: Window(LATENESS_N))

    def add(self, seconds: float) -> None:
        self.window.add(seconds)

    def score(self, seconds: float) -> Finding | None:
        w = self.window
        if len(w) < MIN_SAMPLES:
            return None
        s = (seconds - w.median()) / max(w.mad(), LATENESS_MAD_FLOOR_S)
        if s < LATENESS_MADS:
            return None
        return Finding(
            "lateness",
            round(s, 3),
            {"runs": len(w), "medianSeconds": round(w.median(), 3), "madSeconds": w.mad()},
            f"started {format_duration(seconds)} after its slot; the last {len(w)} starts "
            f"were {format_duration(w.median())} late median, {_mads(s)}",
        )


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


@dataclass
class FailureModel:
    """A job's recent outcomes (True = failed): the recent rate against the rest, streaks.

    Once it has raised, it stays quiet until the recent runs look normal again, so a
    bad spell is one anomaly, not one per run.
    """

    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=OUTCOMES_N))
    raised: bool = False

    def add(self, failed: bool) -> Finding | None:
        self.outcomes.append(failed)
        finding = self._judge()
        if finding is None:
            self.raised = False
            return None
        if self.raised:
            return None
        self.raised = True
        return finding

    def _judge(self) -> Finding | None:
        runs = list(self.outcomes)
        streak = 0
        for failed in reversed(runs):
            if not failed:
                break
            streak += 1
        recent, before = runs[-RECENT_N:], runs[:-RECENT_N]
        if streak:  # the baseline leaves out the streak itself
            before = runs[: max(0, len(runs) - max(RECENT_N, streak))]
        if len(before) < MIN_BASELINE_RUNS:
            return None
        failures = sum(before)
        p0 = (failures + 1) / (len(before) + 2)  # never 0: a first failure is not a miracle
        rate = f"it failed {failures} of the {len(before)} runs before"
        baseline = {"runs": len(before), "failures": failures, "rate": round(p0, 4)}
        if streak >= MIN_STREAK and p0**streak <= FAILURE_ALPHA:
            p = p0**streak
            return Finding(
                "failure_rate",
                round(-math.log10(p), 3),
                {**baseline, "streak": streak},
                f"failed {streak} times in a row; {rate}, p = {p:.1g}",
            )
        k = sum(recent)
        p = binomial_tail(k, len(recent), p0)
        if k >= MIN_STREAK and p <= FAILURE_ALPHA:
            return Finding(
                "failure_rate",
                round(-math.log10(p), 3),
                {**baseline, "recentRuns": len(recent), "recentFailures": k},
                f"failed {k} of the last {len(recent)} runs; {rate}, p = {p:.1g}",
            )
        return None
