"""How well and how fast the anomaly detector finds labelled anomalies in synthetic histories.

    python bench/anomaly.py [--jobs 200] [--days 30] [--seed 1]

Every job runs hourly for `--days` days. Jobs come in five shapes: steady (durations
within about 2%), noisy (a log-normal spread of 25%), seasonal by hour of day (five
times slower from 01:00 to 03:59), seasonal by day of week (three times slower at the
weekend) and both together, each around its own median (5 s to 2 h). Normal start
lateness is tens of milliseconds with an occasional few seconds of jitter; failures
happen at the job's own rate (0, 1% or 5%).

Injected, and labelled: 1% of runs take 5-20 times longer or shorter (duration); 1% of
runs start 1-15 minutes late (lateness); a third of the jobs have one spell of 30 runs
failing at 50% (failure_rate); 1% of slots leave no run record at all (silence).

Each run goes through the detector's own code (`JobState.started`, then
`JobState.completed`), silent slots through `silence.silent_slots` over the records.
Prints one JSON line per kind: kind, labelled, found, precision, recall,
false_alarms_per_1000 (false alarms per 1,000 normal runs, or slots), score_p99_us and
score_max_us (CPU time of one scoring call with a warm baseline: what the detector's
greenlet spends per run). A duration or lateness finding is right when its run was
injected; a failure-rate finding when it falls in a spell (a spell is found when any
finding does), a silence finding when its slot was dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from itinerary.anomaly.detector import JobState  # noqa: E402
from itinerary.anomaly.silence import silent_slots  # noqa: E402
from itinerary.jobs import parse_job  # noqa: E402

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
SHAPES = ("steady", "noisy", "hourly", "weekly", "both")
SPELL = 30
WARMUP_DAYS = 14  # history a job has before its runs are counted (the detector loads it)


@dataclass
class Tally:
    labelled: int = 0
    found: int = 0
    true: int = 0
    false: int = 0
    normal: int = 0
    hit: int = -1  # labelled ones found, when not one finding per labelled one (spells)
    learning_false: int = 0  # false alarms while the job had less history than WARMUP
    learning_normal: int = 0

    def line(self, kind: str, times: list[float]) -> dict:
        times.sort()
        p99 = times[int(len(times) * 0.99)] if times else 0.0
        return {
            "kind": kind,
            "labelled": self.labelled,
            "found": self.found,
            "precision": round(self.true / self.found, 4) if self.found else None,
            "recall": round((self.true if self.hit < 0 else self.hit) / self.labelled, 4)
            if self.labelled
            else None,
            "false_alarms_per_1000": round(1000 * self.false / max(1, self.normal), 4),
            "learning_false_alarms_per_1000": round(
                1000 * self.learning_false / max(1, self.learning_normal), 4
            ),
            "score_p99_us": round(p99 * 1e6, 1),
            "score_max_us": round(times[-1] * 1e6, 1) if times else 0.0,
        }


def _factor(shape: str, at: datetime) -> float:
    f = 1.0
    if shape in ("hourly", "both") and 1 <= at.hour <= 3:
        f *= 5.0
    if shape in ("weekly", "both") and at.weekday() >= 5:
        f *= 3.0
    return f


def simulate(jobs: int, days: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    tallies = {k: Tally() for k in ("duration", "lateness", "failure_rate")}
    times: dict[str, list[float]] = {k: [] for k in tallies}
    clock = time.thread_time
    for j in range(jobs):
        shape = SHAPES[j % len(SHAPES)]
        median = math.exp(rng.uniform(math.log(5), math.log(7200)))
        sigma = 0.02 if shape == "steady" else (0.25 if shape == "noisy" else 0.08)
        p_fail = (0.0, 0.01, 0.05)[j % 3]
        runs = days * 24
        spell = rng.randrange(WARMUP_DAYS * 24, runs - SPELL) if j % 3 == 0 else None
        if spell is not None:
            tallies["failure_rate"].labelled += 1
        state, spell_found = JobState(), False
        for n in range(runs):
            slot = T0 + timedelta(hours=n)
            in_spell = spell is not None and spell <= n < spell + SPELL
            # lateness
            late = abs(rng.gauss(0.05, 0.03)) + (rng.uniform(1, 5) if rng.random() < 0.01 else 0)
            late_anomaly = rng.random() < 0.01
            if late_anomaly:
                late = rng.uniform(60, 900)
            t = clock()
            finding = state.started(late)
            times["lateness"].append(clock() - t)
            learning = n < WARMUP_DAYS * 24
            _count(tallies["lateness"], late_anomaly, finding is not None, learning)
            # outcome and duration
            failed = rng.random() < (0.5 if in_spell else p_fail)
            seconds = median * _factor(shape, slot) * math.exp(rng.gauss(0, sigma))
            dur_anomaly = not failed and rng.random() < 0.01
            if dur_anomaly:
                ratio = math.exp(rng.uniform(math.log(5), math.log(20)))
                seconds = seconds * ratio if rng.random() < 0.5 else seconds / ratio
            status = "failed" if failed else "succeeded"
            ended = slot + timedelta(seconds=late + seconds)
            t = clock()
            found = state.completed(status, seconds, ended)
            times["duration" if not failed else "failure_rate"].append(clock() - t)
            kinds = {f.kind for f in found}
            if not failed:
                _count(tallies["duration"], dur_anomaly, "duration" in kinds, learning)
            fr = tallies["failure_rate"]
            if learning:
                fr.learning_normal += 1
                fr.learning_false += "failure_rate" in kinds
                continue
            if spell is None or not (spell <= n < spell + SPELL + 5):
                fr.normal += 1
            if "failure_rate" in kinds:
                fr.found += 1
                if spell is not None and spell <= n < spell + SPELL + 5:
                    fr.true += 1
                    spell_found = True
                else:
                    fr.false += 1
        tallies["failure_rate"].hit += spell_found
    tallies["failure_rate"].hit += 1  # it counts from -1
    out = [tallies[k].line(k, times[k]) for k in ("duration", "lateness", "failure_rate")]
    out.append(silence(jobs, days, rng))
    return out


def _count(tally: Tally, labelled: bool, flagged: bool, learning: bool = False) -> None:
    if learning:
        tally.learning_normal += not labelled
        tally.learning_false += flagged and not labelled
        return
    tally.labelled += labelled
    tally.normal += not labelled
    tally.found += flagged
    tally.true += flagged and labelled
    tally.false += flagged and not labelled


def silence(jobs: int, days: int, rng: random.Random) -> dict:
    tally, times = Tally(), []
    until = T0 + timedelta(days=days)
    for j in range(jobs):
        spec = parse_job({"name": f"j{j}", "commands": [["true"]], "schedule": "0 * * * *"})
        spec = replace(spec, id=j + 1, created_at=T0 - timedelta(hours=1))
        recorded, dropped = set(), set()
        for n in range(days * 24):
            slot = T0 + timedelta(hours=n)
            if rng.random() < 0.01:
                dropped.add(slot)
            else:
                recorded.add((j + 1, slot))
        slots = set()
        for day in range(days):  # one check a day here (a minute in the product)
            since = T0 - timedelta(minutes=1) + timedelta(days=day)
            t = time.thread_time()
            found = silent_slots([spec], since, min(until, since + timedelta(days=1)), recorded)
            times.append((time.thread_time() - t) / 24)  # per slot examined
            slots |= {slot for _, slot in found}
        tally.labelled += len(dropped)
        tally.normal += days * 24 - len(dropped)
        tally.found += len(slots)
        tally.true += len(slots & dropped)
        tally.false += len(slots - dropped)
    return tally.line("silence", times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for line in simulate(args.jobs, args.days, args.seed):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
